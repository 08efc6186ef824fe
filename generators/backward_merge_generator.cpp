// Synchronized backward, step 3: the gathered sums of every process added in row order, and the
// per-channel coefficients of backward_apply from them (as backward_reduce derives them from one
// tensor's sums).
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class BackwardMerge : public IabnGenerator<BackwardMerge> {
public:
    Input<Buffer<double, 2>> gathered{"gathered"};  // (i, p): sync_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};

    Output<Buffer<void, 1>> grad_scale{"grad_scale"};
    Output<Buffer<void, 1>> grad_mean_dy{"grad_mean_dy"};
    Output<Buffer<void, 1>> grad_mean_dy_xhat{"grad_mean_dy_xhat"};
    Output<Buffer<void, 1>> xhat_bias{"xhat_bias"};
    Output<Buffer<void, 1>> xhat_inv_g{"xhat_inv_g"};

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&weight, &bias, &saved_invstd}) b->set_type(t.channel);
        for (auto* b : {&grad_scale, &grad_mean_dy, &grad_mean_dy_xhat, &xhat_bias, &xhat_inv_g}) {
            b->set_type(t.compute);
        }
    }

    void generate() {
        const ElementTypes t = types();
        const Type acc = t.accum;
        Var c("c");
        // Added one process after the other in row order (sync_partials.h): the same bits on every process.
        RDom p(0, gathered.dim(1).extent(), "p");
        Func merged = merge_sums(c, unpack_partials(gathered, c, p, weight.dim(0).extent()));
        Expr g = effective_scale(cast(acc, weight(c)), abs_weight, epsilon);
        GradCoefficients k = grad_coefficients(g, cast(acc, saved_invstd(c)), cast(acc, merged(c)[1]),
                                               cast(acc, merged(c)[2]), cast(acc, merged(c)[0]),
                                               Internal::const_true(), t.compute);
        grad_scale(c) = k.scale;
        grad_mean_dy(c) = k.mean_dy;
        grad_mean_dy_xhat(c) = k.mean_dy_xhat;
        xhat_bias(c) = cast(t.compute, bias(c));
        xhat_inv_g(c) = cast(t.compute, 1 / g);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        gathered.set_estimates(estimate_partials(4));
        estimate_channel_buffers(weight, bias, saved_invstd, grad_scale, grad_mean_dy, grad_mean_dy_xhat, xhat_bias,
                                 xhat_inv_g);
        estimate_scalars(epsilon, abs_weight);

        /* THE SCHEDULE: O(C x processes) work. CPU: the merge at root, the rest Halide's default;
           GPU: a thread per channel. */
        merged.compute_root();
        if (get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_per_channel(merged);
            iabn_sched::schedule_gpu_channel_outputs({grad_scale, grad_mean_dy, grad_mean_dy_xhat, xhat_bias,
                                                      xhat_inv_g});
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardMerge, iabn_backward_merge)
