// Global statistics (!training || use_global_stats): the per-channel coefficients of the forward
// apply and of the backward apply, from the running statistics. Nothing is updated.
#include "channel_math.h"
#include "iabn_generator.h"

namespace iabn_gen {
using namespace Halide;

class GlobalCoeffs : public IabnGenerator<GlobalCoeffs, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<void, 1>> running_mean{"running_mean"};
    Input<Buffer<void, 1>> running_var{"running_var"};
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};

    Output<Buffer<void, 1>> apply_pivot{"apply_pivot"};
    Output<Buffer<void, 1>> apply_scale{"apply_scale"};
    Output<Buffer<void, 1>> apply_shift{"apply_shift"};
    Output<Buffer<void, 1>> grad_scale{"grad_scale"};
    Output<Buffer<void, 1>> xhat_bias{"xhat_bias"};
    Output<Buffer<void, 1>> xhat_inv_g{"xhat_inv_g"};

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&running_mean, &running_var, &weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&apply_pivot, &apply_scale, &apply_shift, &grad_scale, &xhat_bias, &xhat_inv_g}) {
            b->set_type(t.compute);
        }
    }

    void generate() {
        const ElementTypes t = types();
        const Type acc = t.accum;
        Var c("c");
        Expr g = effective_scale(cast(acc, weight(c)), abs_weight, epsilon);
        Expr b = cast(acc, bias(c));
        Expr invstd = inverse_std(cast(acc, running_var(c)), epsilon);
        ApplyCoefficients k = apply_coefficients(cast(acc, running_mean(c)), invstd, g, b, t.compute);
        apply_pivot(c) = k.pivot;
        apply_scale(c) = k.scale;
        apply_shift(c) = k.shift;
        Expr zero = cast(acc, 0);
        grad_scale(c) = grad_coefficients(g, invstd, zero, zero, 1, Internal::const_false(), t.compute).scale;
        xhat_bias(c) = cast(t.compute, b);
        xhat_inv_g(c) = cast(t.compute, 1 / g);
        /* THE SCHEDULE: O(C) work: on a CPU Halide's default (serial, root) is right; on a GPU, a
           thread per channel. */
        if (get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_channel_outputs({apply_pivot, apply_scale, apply_shift, grad_scale, xhat_bias,
                                                      xhat_inv_g}, gpu_params());
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GlobalCoeffs, iabn_global_coeffs)
