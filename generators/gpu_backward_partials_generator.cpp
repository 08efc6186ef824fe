// GPU training backward, kernel 1 of 3: each block of the partition (schedules/gpu_blocks.h) of
// each channel stores its element count, sum of dy and sum of dy * xhat (block_partials.h).
// z and dz are only read. Kernel 2 is gpu_backward_finish, kernel 3 backward_apply.
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuBackwardPartials : public IabnGenerator<GpuBackwardPartials> {
public:
    Input<Buffer<void>> z{"z"};    // forward output, view (s, c, n), or its vector view
    Input<Buffer<void>> dz{"dz"};  // incoming gradient, same view
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};
    Input<int> steps{"steps"};  // the partition (runtime/plan.h, gpu_partition())
    Input<int> row_steps{"row_steps"};

    // Channels-last: channels a block (schedules/gpu_blocks.h, gpu_channel_lanes(): 32, or the
    // variants for fewer channels, 4, 8 and 16). Unused in nchw.
    GeneratorParam<int> channel_lanes{"channel_lanes", 32};
    // nchw: elements per 128-bit vector, 1 for the scalar variant (as gpu_forward_partials).
    GeneratorParam<int> vector{"vector", 1};

    Output<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb)

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&z, &dz}) {
            b->set_type(t.storage);
            b->set_dimensions(vector > 1 ? 4 : 3);
        }
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
    }

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_backward_partials: a GPU pipeline");
        if (vector > 1 && view() != ViewLayout::nchw) throw std::invalid_argument("gpu_backward_partials: vectors in nchw only");
        const ElementTypes t = types();
        Var c("c");
        XhatChannel xc = xhat_channel(weight, bias, c, epsilon, abs_weight, t);
        Func channel = xc.channel;
        const int s_dim = vector > 1 ? 1 : 0;  // (the vector view's lanes come first)
        BlockSums b = blocks_of(c, z.dim(s_dim).extent(), z.dim(s_dim + 2).extent(), steps, row_steps,
                                gpu_block_lanes(channel_lanes), vector);
        partials(b.k, c, b.sb, b.nb) =
            backward_block_values(b, z, dz, channel, activation, activation_param, t)(b.k, c, b.sb, b.nb);

        require_view(z, view(), vector);
        require_view(dz, view(), vector);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_block_partials(partials, b, view(), {channel}, activation_specializations(activation),
                                                gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuBackwardPartials, iabn_gpu_backward_partials)
