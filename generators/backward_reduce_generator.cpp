// Backward, part 1: per-channel sums of dy and dy * xhat recovered from (z, dz), the parameter
// gradients, and the coefficients of the element-wise backward apply.
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class BackwardReduce : public IabnGenerator<BackwardReduce, ReductionTunables> {
public:
    Input<Buffer<void, 3>> z{"z"};    // forward output, view (s, c, n)
    Input<Buffer<void, 3>> dz{"dz"};  // incoming gradient, same view
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};  // read with batch statistics
    Input<Buffer<void, 1>> running_var{"running_var"};    // read with global statistics
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<bool> batch_stats{"batch_stats"};  // training && !use_global_stats
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};

    Input<int> threads{"threads"};  // the kernels' thread count: bounds the reduction's partial sums

    Output<Buffer<void, 1>> weight_grad{"weight_grad"};
    Output<Buffer<void, 1>> bias_grad{"bias_grad"};
    Output<Buffer<void, 1>> grad_scale{"grad_scale"};
    Output<Buffer<void, 1>> grad_mean_dy{"grad_mean_dy"};
    Output<Buffer<void, 1>> grad_mean_dy_xhat{"grad_mean_dy_xhat"};
    Output<Buffer<void, 1>> xhat_bias{"xhat_bias"};
    Output<Buffer<void, 1>> xhat_inv_g{"xhat_inv_g"};

    void configure() {
        const ElementTypes t = types();
        z.set_type(t.storage);
        dz.set_type(t.storage);
        for (auto* b : {&weight, &bias, &saved_invstd, &running_var}) b->set_type(t.channel);
        for (auto* b : {&weight_grad, &bias_grad}) b->set_type(t.channel);
        for (auto* b : {&grad_scale, &grad_mean_dy, &grad_mean_dy_xhat, &xhat_bias, &xhat_inv_g}) {
            b->set_type(t.compute);
        }
    }

    void generate() {
        const ElementTypes t = types();
        Var c("c");

        TrainingBackward b = training_backward(z, dz, weight, bias, saved_invstd, running_var, c, weight_grad, bias_grad,
                                               epsilon, abs_weight, batch_stats, activation, activation_param, view(), t);
        Func channel = b.channel;
        ChannelSums& gs = b.gs;
        const GradCoefficients& k = b.k;
        grad_scale(c) = k.scale;
        grad_mean_dy(c) = k.mean_dy;
        grad_mean_dy_xhat(c) = k.mean_dy_xhat;
        xhat_bias(c) = channel(c)[0];
        xhat_inv_g(c) = channel(c)[1];

        zero_mins(z);
        zero_mins(dz);
        require_dense(z, view());
        require_dense(dz, view());

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(z, dz);
        estimate_channel_buffers(weight, bias, saved_invstd, running_var, weight_grad, bias_grad, grad_scale,
                                 grad_mean_dy, grad_mean_dy_xhat, xhat_bias, xhat_inv_g);
        estimate_scalars(epsilon, abs_weight, batch_stats, activation, activation_param, threads);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (get_target().has_gpu_feature()) {
            // (GPUs spread each channel over many blocks: block_partials.h.)
            throw std::invalid_argument("backward_reduce: a CPU pipeline; GPUs run "
                                        "gpu_backward_partials and gpu_backward_finish");
        }
        if (!using_autoscheduler()) {
            channel.compute_root();
            iabn_sched::schedule_channel_reduction(gs, view(), cpu_params(), get_target(), threads,
                                                   z.dim(1).extent(), activation_specializations(activation));
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardReduce, iabn_backward_reduce)
