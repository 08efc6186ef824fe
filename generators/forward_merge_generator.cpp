// Synchronized training forward, step 3: the gathered partials of every process merged in row
// order into the statistics of the whole batch, and everything derived from them per channel,
// as forward_stats derives it from one tensor: saved statistics, the running-statistics update
// (Bessel factor from the global count) and the coefficients of forward_apply.
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class ForwardMerge : public IabnGenerator<ForwardMerge> {
public:
    Input<Buffer<double, 2>> gathered{"gathered"};  // (i, p): sync_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    Output<Buffer<void, 1>> saved_mean{"saved_mean"};
    Output<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Output<Buffer<void, 1>> running_mean{"running_mean"};  // updated in place
    Output<Buffer<void, 1>> running_var{"running_var"};    // updated in place
    Output<Buffer<void, 1>> apply_pivot{"apply_pivot"};
    Output<Buffer<void, 1>> apply_scale{"apply_scale"};
    Output<Buffer<void, 1>> apply_shift{"apply_shift"};

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&saved_mean, &saved_invstd, &running_mean, &running_var}) b->set_type(t.channel);
        for (auto* b : {&apply_pivot, &apply_scale, &apply_shift}) b->set_type(t.compute);
    }

    void generate() {
        const ElementTypes t = types();
        Var c("c");
        // Merged in row order around row 0's mean (sync_partials.h): the same bits on every process.
        RDom p(0, gathered.dim(1).extent(), "p");
        const Expr channels = weight.dim(0).extent();
        MergedMoments merged = merge_moments(c, unpack_partials(gathered, c, p, channels),
                                             unpack_partials(gathered, c, 0, channels).a);
        Func sums = merged.sums;
        Expr count = merged.count, mean = merged.mean, var = merged.var;
        ApplyCoefficients k =
            finish_training_forward({saved_mean, saved_invstd, running_mean, running_var}, c, mean, var, count,
                                    weight, bias, epsilon, momentum, unbiased_running_var, abs_weight, t);
        apply_pivot(c) = k.pivot;
        apply_scale(c) = k.scale;
        apply_shift(c) = k.shift;

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        gathered.set_estimates(estimate_partials(4));
        estimate_channel_buffers(weight, bias, saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
                                 apply_scale, apply_shift);
        estimate_scalars(epsilon, momentum, unbiased_running_var, abs_weight);

        /* THE SCHEDULE: O(C x processes) work. CPU: the merge at root, the rest Halide's default;
           GPU: a thread per channel. */
        sums.compute_root();
        if (get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_per_channel(sums);
            iabn_sched::schedule_gpu_channel_outputs({saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
                                                      apply_scale, apply_shift});
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardMerge, iabn_forward_merge)
