// Synchronized backward, step 1: this process's count and sums of dy and dy * xhat per channel
// (sync_partials.h), for the caller to all-gather, and the local parameter gradients from them.
// z and dz are only read.
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class BackwardPartials : public IabnGenerator<BackwardPartials, ReductionTunables> {
public:
    Input<Buffer<void, 3>> z{"z"};    // forward output, view (s, c, n)
    Input<Buffer<void, 3>> dz{"dz"};  // incoming gradient, same view
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};

    Input<int> threads{"threads"};  // the kernels' thread count: bounds the reduction's partial sums

    Output<Buffer<void, 1>> weight_grad{"weight_grad"};
    Output<Buffer<void, 1>> bias_grad{"bias_grad"};
    Output<Buffer<double, 1>> partials{"partials"};  // 2C + 1 values

    void configure() {
        const ElementTypes t = types();
        z.set_type(t.storage);
        dz.set_type(t.storage);
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&weight_grad, &bias_grad}) b->set_type(t.channel);
    }

    void generate() {
        const ElementTypes t = types();
        Var c("c"), i("i");
        LocalBackward b = local_backward(z, dz, weight, bias, c, weight_grad, bias_grad, epsilon, abs_weight, activation,
                                         activation_param, view(), t);
        Func channel = b.channel;
        ChannelSums& gs = b.gs;
        Func sum_dy("sum_dy"), sum_dy_xhat("sum_dy_xhat");
        Func sums = gs.sums;
        sum_dy(c) = cast(Float(64), sums(c)[0]);
        sum_dy_xhat(c) = cast(Float(64), sums(c)[1]);
        Func count("count");  // (the same in every channel)
        count(c) = elements_per_channel(z, Float(64));
        partials(i) = pack_partials(i, z.dim(1).extent(), count, sum_dy, sum_dy_xhat);

        zero_mins(z);
        zero_mins(dz);
        require_dense(z, view());
        require_dense(dz, view());

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(z, dz);
        estimate_channel_buffers(weight, bias, weight_grad, bias_grad);
        partials.set_estimates(estimate_partials());
        estimate_scalars(epsilon, abs_weight, activation, activation_param, threads);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (get_target().has_gpu_feature()) {
            // (GPUs spread each channel over many blocks: block_partials.h.)
            throw std::invalid_argument("backward_partials: a CPU pipeline; GPUs run "
                                        "gpu_backward_partials and gpu_backward_row");
        }
        if (!using_autoscheduler()) {
            channel.compute_root();
            iabn_sched::schedule_channel_reduction(gs, view(), cpu_params(), get_target(), threads,
                                                   z.dim(1).extent(), activation_specializations(activation));
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardPartials, iabn_backward_partials)
