// Training forward, part 1: batch statistics of each channel and everything derived from them
// per channel: saved mean and inverse std, the running-statistics update, and the coefficients
// of the element-wise apply (forward_apply_generator.cpp).
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class ForwardStats : public IabnGenerator<ForwardStats, ReductionTunables> {
public:
    Input<Buffer<void, 3>> x{"x"};  // view (s, c, n), read only
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    Input<int> threads{"threads"};  // the kernels' thread count: bounds the reduction's partial sums

    Output<Buffer<void, 1>> saved_mean{"saved_mean"};
    Output<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Output<Buffer<void, 1>> running_mean{"running_mean"};  // updated in place
    Output<Buffer<void, 1>> running_var{"running_var"};    // updated in place
    Output<Buffer<void, 1>> apply_pivot{"apply_pivot"};
    Output<Buffer<void, 1>> apply_scale{"apply_scale"};
    Output<Buffer<void, 1>> apply_shift{"apply_shift"};

    void configure() {
        const ElementTypes t = types();
        x.set_type(t.storage);
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&saved_mean, &saved_invstd, &running_mean, &running_var}) b->set_type(t.channel);
        for (auto* b : {&apply_pivot, &apply_scale, &apply_shift}) b->set_type(t.compute);
    }

    void generate() {
        const ElementTypes t = types();
        Var c("c");

        TrainingForward f = training_forward(x, weight, bias, c, {saved_mean, saved_invstd, running_mean, running_var},
                                             epsilon, momentum, unbiased_running_var, abs_weight, view(), t);
        BatchStatistics& st = f.st;
        apply_pivot(c) = f.k.pivot;
        apply_scale(c) = f.k.scale;
        apply_shift(c) = f.k.shift;

        zero_mins(x);
        require_dense(x, view());

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(x);
        estimate_channel_buffers(weight, bias, saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
                                 apply_scale, apply_shift);
        estimate_scalars(epsilon, momentum, unbiased_running_var, abs_weight, threads);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (get_target().has_gpu_feature()) {
            // (GPUs spread each channel over many blocks: block_partials.h.)
            throw std::invalid_argument("forward_stats: a CPU pipeline; GPUs run "
                                        "gpu_forward_partials and gpu_forward_finish");
        }
        if (!using_autoscheduler()) {
            iabn_sched::schedule_channel_reduction(st.sums, view(), cpu_params(), get_target(), threads,
                                                   x.dim(1).extent(), {});
            st.moments.compute_root();
            iabn_sched::schedule_pivot(st.pivot, st.pivot_sum, view(), get_target());
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardStats, iabn_forward_stats)
