// Training forward in one pass over memory (nchw): for each channel, its batch statistics, then
// normalize + activate over its elements while they are still in cache, then its per-channel
// outputs. DRAM sees x read once and z written once (docs/DESIGN.md, "Performance model").
//
// The caller's tensor is bound twice: as the Input x (read by the statistics) and as the Output z
// (rewritten in place). The schedule guarantees that a channel's statistics are complete before
// any of its elements is written, and that no other channel's elements are touched; the test
// suite proves the in-place result for every target.
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class ForwardFused : public IabnGenerator<ForwardFused, FusedTunables> {
public:
    Input<Buffer<void, 3>> x{"x"};  // view (s, c, n); the same memory as z
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};

    Output<Buffer<void, 3>> z{"z"};
    Output<Buffer<void, 1>> saved_mean{"saved_mean"};
    Output<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Output<Buffer<void, 1>> running_mean{"running_mean"};  // updated in place
    Output<Buffer<void, 1>> running_var{"running_var"};    // updated in place

    void configure() {
        const ElementTypes t = types();
        x.set_type(t.storage);
        z.set_type(t.storage);
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&saved_mean, &saved_invstd, &running_mean, &running_var}) b->set_type(t.channel);
    }

    void generate() {
        const ElementTypes t = types();
        Var s("s"), c("c"), n("n");

        TrainingForward f = training_forward(x, weight, bias, c, {saved_mean, saved_invstd, running_mean, running_var},
                                             epsilon, momentum, unbiased_running_var, abs_weight, ViewLayout::nchw, t);
        BatchStatistics& st = f.st;
        Func coefficients("coefficients");
        coefficients(c) = Tuple(f.k.pivot, f.k.scale, f.k.shift);

        z(s, c, n) = undef(t.storage);
        z(s, c, n) = t.to_storage(normalize_activate(t.to_compute(z(s, c, n)), coefficients(c)[0],
                                                        coefficients(c)[1], coefficients(c)[2], activation,
                                                        cast(t.compute, activation_param)));

        zero_mins(x);
        zero_mins(z);
        require_dense(x, ViewLayout::nchw);
        require_dense(z, ViewLayout::nchw);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(x, z);
        estimate_channel_buffers(weight, bias, saved_mean, saved_invstd, running_mean, running_var);
        estimate_scalars(epsilon, momentum, unbiased_running_var, abs_weight, activation, activation_param);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (!using_autoscheduler()) {
            iabn_sched::require_cpu(get_target());
            iabn_sched::FusedChannels f;
            f.out = z;
            f.sums = st.sums;
            f.per_channel = {st.pivot, st.moments, coefficients};
            f.channel_outputs = {saved_mean, saved_invstd, running_mean, running_var};
            f.update_cases = activation_specializations(activation);
            iabn_sched::schedule_fused_channels(f, cpu_params(), get_target());
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardFused, iabn_forward_fused)
