// Backward, part 2: dx written over dz, element by element.
//   batch statistics:  dx = g * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
//   global statistics: dx = g * invstd * dy
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class BackwardApply : public IabnGenerator<BackwardApply, UpdateTunables, GpuUpdateTunables> {
public:
    // GPUs: elements per 128-bit vector, 1 for the scalar variant (tensor_view.h, element_view()).
    GeneratorParam<int> vector{"vector", 1};
    Input<Buffer<void>> z{"z"};  // forward output, read only; never aliases dx
    Input<Buffer<void, 1>> grad_scale{"grad_scale"};  // coefficients from backward_reduce / global_coeffs
    Input<Buffer<void, 1>> grad_mean_dy{"grad_mean_dy"};
    Input<Buffer<void, 1>> grad_mean_dy_xhat{"grad_mean_dy_xhat"};
    Input<Buffer<void, 1>> xhat_bias{"xhat_bias"};
    Input<Buffer<void, 1>> xhat_inv_g{"xhat_inv_g"};
    Input<bool> batch_stats{"batch_stats"};
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};
    Output<Buffer<void>> dx{"dx"};  // dz on entry; the view of z

    void configure() {
        const ElementTypes t = types();
        z.set_type(t.storage);
        for (auto* b : {&grad_scale, &grad_mean_dy, &grad_mean_dy_xhat, &xhat_bias, &xhat_inv_g}) {
            b->set_type(t.compute);
        }
        dx.set_type(t.storage);
        z.set_dimensions(vector > 1 ? 4 : 3);
        dx.set_dimensions(vector > 1 ? 4 : 3);
    }

    void generate() {
        const ElementTypes t = types();
        const ElementView v = element_view(view(), vector);
        const std::vector<Expr> at(v.args.begin(), v.args.end());
        const Expr c = v.c;
        dx(v.args) = undef(t.storage);
        Recovered e = recover(t, z(at), dx(at), activation, cast(t.compute, activation_param), xhat_bias(c),
                              xhat_inv_g(c));
        dx(v.args) = t.to_storage(grad_input(e, {grad_scale(c), grad_mean_dy(c), grad_mean_dy_xhat(c)}, batch_stats));

        require_view(z, view(), vector);
        require_view(dx, view(), vector);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        if (vector <= 1) estimate_tensors(z, dx);
        estimate_channel_buffers(grad_scale, grad_mean_dy, grad_mean_dy_xhat, xhat_bias, xhat_inv_g);
        estimate_scalars(batch_stats, activation, activation_param);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (!using_autoscheduler() && get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_inplace_update(dx, view(), backward_specializations(batch_stats, activation),
                                                    gpu_params());
        } else if (!using_autoscheduler()) {
            iabn_sched::schedule_inplace_update(dx, view(), cpu_params(), get_target(),
                                                backward_specializations(batch_stats, activation));
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::BackwardApply, iabn_backward_apply)
