// Synchronized backward, step 3: the gathered sums of every process added in row order, and the
// per-channel coefficients of backward_apply from them (as backward_reduce derives them from one
// tensor's sums).
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class BackwardMerge : public IabnGenerator<BackwardMerge, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 2>> gathered{"gathered"};  // (i, p): sync_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};

    // One Func, one loop: (grad_scale, grad_mean_dy, grad_mean_dy_xhat, xhat_bias, xhat_inv_g),
    // a buffer each.
    Output<Func> merge{"merge", 1};

    void configure() {
        for (auto* b : {&weight, &bias, &saved_invstd}) b->set_type(types().channel);
    }

    void generate() {
        const ElementTypes t = types();
        const Type acc = t.accum;
        Var c("c");
        // Added one process after the other in row order (sync_partials.h): the same bits on every process.
        RDom p(0, gathered.dim(1).extent(), "p");
        Func merged = merge_sums(c, unpack_partials(gathered, c, p, weight.dim(0).extent()));
        XhatChannel xc = xhat_channel(weight, bias, c, epsilon, abs_weight, t);
        GradCoefficients k = grad_coefficients(xc.g, cast(acc, saved_invstd(c)), cast(acc, merged(c)[1]),
                                               cast(acc, merged(c)[2]), cast(acc, merged(c)[0]),
                                               Internal::const_true(), t.compute);
        merge(c) = Tuple(k.scale, k.mean_dy, k.mean_dy_xhat, xc.channel(c)[0], xc.channel(c)[1]);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        gathered.set_estimates(estimate_partials(4));
        estimate_channel_buffers(weight, bias, saved_invstd);
        merge.set_estimates(estimate_channels());
        estimate_scalars(epsilon, abs_weight);

        /* THE SCHEDULE: O(C x processes) work. CPU: the merge at root, the rest Halide's default;
           GPU: a thread per channel, the merge in its registers. */
        if (get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_channel_finish(merged, merge, gpu_params());
        } else {
            merged.compute_root();
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardMerge, iabn_backward_merge)
