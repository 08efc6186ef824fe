// Forward, part 2 (training and global statistics alike): normalize and activate, in place.
// z holds x on entry: the Output reads itself (undef pure definition + update), the form of
// in-place computation Halide supports.
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class ForwardApply : public IabnGenerator<ForwardApply, UpdateTunables, GpuUpdateTunables> {
public:
    Input<Buffer<void, 1>> pivot{"pivot"};  // coefficients from forward_stats / global_coeffs
    Input<Buffer<void, 1>> scale{"scale"};
    Input<Buffer<void, 1>> shift{"shift"};
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};
    // GPUs: elements per 128-bit vector, 1 for the scalar variant (tensor_view.h, element_view()).
    GeneratorParam<int> vector{"vector", 1};
    Output<Buffer<void>> z{"z"};  // view (s, c, n), or its vector view; x on entry

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&pivot, &scale, &shift}) b->set_type(t.compute);
        z.set_type(t.storage);
        z.set_dimensions(vector > 1 ? 4 : 3);
    }

    void generate() {
        const ElementTypes t = types();
        const ElementView e = element_view(view(), vector);
        const std::vector<Expr> at(e.args.begin(), e.args.end());
        z(e.args) = undef(t.storage);
        z(e.args) = t.to_storage(normalize_activate(t.to_compute(z(at)), pivot(e.c), scale(e.c), shift(e.c), activation,
                                                    cast(t.compute, activation_param)));

        require_view(z, view(), vector);

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        if (vector <= 1) estimate_tensors(z);
        estimate_channel_buffers(pivot, scale, shift);
        estimate_scalars(activation, activation_param);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (!using_autoscheduler() && get_target().has_gpu_feature()) {
            iabn_sched::schedule_gpu_inplace_update(z, view(), activation_specializations(activation),
                                                    gpu_params());
        } else if (!using_autoscheduler()) {
            iabn_sched::schedule_inplace_update(z, view(), cpu_params(), get_target(),
                                                activation_specializations(activation));
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardApply, iabn_forward_apply)
