// Synchronized training forward, step 3: the gathered partials of every process merged in row
// order into the statistics of the whole batch, and everything derived from them per channel,
// as forward_stats derives it from one tensor: saved statistics, the running-statistics update
// (Bessel factor from the global count) and the coefficients of forward_apply.
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class ForwardMerge : public IabnGenerator<ForwardMerge, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 2>> gathered{"gathered"};  // (i, p): sync_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> running_mean{"running_mean"};  // before the update (merge writes it)
    Input<Buffer<void, 1>> running_var{"running_var"};    // before the update (merge writes it)
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    // One Func, one loop: (saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
    // apply_scale, apply_shift), a buffer each (as gpu_forward_finish's: the running statistics'
    // memory is bound both as the Inputs above and as elements 2 and 3).
    Output<Func> merge{"merge", 1};

    void configure() {
        for (auto* b : {&weight, &bias, &running_mean, &running_var}) b->set_type(types().channel);
    }

    void generate() {
        const ElementTypes t = types();
        Var c("c");
        // Merged in row order around row 0's mean (sync_partials.h): the same bits on every process.
        RDom p(0, gathered.dim(1).extent(), "p");
        const Expr channels = weight.dim(0).extent();
        MergedMoments merged = merge_moments(c, unpack_partials(gathered, c, p, channels),
                                             unpack_partials(gathered, c, 0, channels).a);
        const TrainingValues v =
            training_values(c, merged.mean, merged.var, merged.count, running_mean(c), running_var(c), weight, bias,
                            epsilon, momentum, unbiased_running_var, abs_weight, t);
        merge(c) = v.tuple();

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        gathered.set_estimates(estimate_partials(4));
        estimate_channel_buffers(weight, bias, running_mean, running_var);
        merge.set_estimates(estimate_channels());
        estimate_scalars(epsilon, momentum, unbiased_running_var, abs_weight);

        /* THE SCHEDULE: O(C x processes) work. CPU: the merge at root, the rest Halide's default;
           GPU: a thread per channel, the merge in its registers. */
        if (get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_channel_finish(merged.sums, merge, gpu_params());
        } else {
            merged.sums.compute_root();
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardMerge, iabn_forward_merge)
