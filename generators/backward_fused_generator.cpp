// Backward in one pass over memory (nchw): for each channel, the sums of dy and dy * xhat
// recovered from (z, dz), then dx written over dz while the channel is still in cache, then the
// channel's parameter gradients. DRAM sees z and dz read once and dx written once.
//
// The caller's dz is bound twice: as the Input dz (read by the sums) and as the Output dx
// (rewritten in place), as in forward_fused_generator.cpp.
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class BackwardFused : public IabnGenerator<BackwardFused, FusedTunables> {
public:
    Input<Buffer<void, 3>> z{"z"};    // forward output, view (s, c, n), read only
    Input<Buffer<void, 3>> dz{"dz"};  // the same memory as dx
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};  // read with batch statistics
    Input<Buffer<void, 1>> running_var{"running_var"};    // read with global statistics
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<bool> batch_stats{"batch_stats"};  // training && !use_global_stats
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};

    Output<Buffer<void, 3>> dx{"dx"};
    Output<Buffer<void, 1>> weight_grad{"weight_grad"};
    Output<Buffer<void, 1>> bias_grad{"bias_grad"};

    void configure() {
        const ElementTypes t = types();
        z.set_type(t.storage);
        dz.set_type(t.storage);
        dx.set_type(t.storage);
        for (auto* b : {&weight, &bias, &saved_invstd, &running_var}) b->set_type(t.channel);
        for (auto* b : {&weight_grad, &bias_grad}) b->set_type(t.channel);
    }

    void generate() {
        const ElementTypes t = types();
        Var s("s"), c("c"), n("n");
        const Expr a = cast(t.compute, activation_param);

        TrainingBackward b = training_backward(z, dz, weight, bias, saved_invstd, running_var, c, weight_grad, bias_grad,
                                               epsilon, abs_weight, batch_stats, activation, activation_param,
                                               ViewLayout::nchw, t);
        Func channel = b.channel;
        ChannelSums& gs = b.gs;
        const GradCoefficients& k = b.k;
        Func coefficients("coefficients");
        coefficients(c) = Tuple(k.scale, k.mean_dy, k.mean_dy_xhat);

        dx(s, c, n) = undef(t.storage);
        Recovered e = recover(t, z(s, c, n), dx(s, c, n), activation, a,
                              channel(c)[0], channel(c)[1]);
        dx(s, c, n) = t.to_storage(grad_input(e, {coefficients(c)[0], coefficients(c)[1], coefficients(c)[2]},
                                                 batch_stats));

        for (auto* b : {&z, &dz}) {
            zero_mins(*b);
            require_dense(*b, ViewLayout::nchw);
        }
        zero_mins(dx);
        require_dense(dx, ViewLayout::nchw);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(z, dz, dx);
        estimate_channel_buffers(weight, bias, saved_invstd, running_var, weight_grad, bias_grad);
        estimate_scalars(epsilon, abs_weight, batch_stats, activation, activation_param);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (!using_autoscheduler()) {
            iabn_sched::require_cpu(get_target());
            iabn_sched::FusedChannels f;
            f.out = dx;
            f.sums = gs;
            f.per_channel = {channel, coefficients};
            f.channel_outputs = {weight_grad, bias_grad};
            f.update_cases = backward_specializations(batch_stats, activation);
            f.reduction_cases = activation_specializations(activation);
            iabn_sched::schedule_fused_channels(f, cpu_params(), get_target());
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardFused, iabn_backward_fused)
