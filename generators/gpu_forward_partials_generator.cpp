// GPU training forward, kernel 1 of 3: each block of the partition (schedules/gpu_blocks.h) of
// each channel stores its element count, mean and M2 (block_partials.h). x is only read.
// Kernel 2 is gpu_forward_finish, kernel 3 forward_apply.
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuForwardPartials : public IabnGenerator<GpuForwardPartials> {
public:
    Input<Buffer<void>> x{"x"};     // view (s, c, n), or its vector view; read only
    Input<int> steps{"steps"};      // the partition (runtime/plan.h, gpu_partition())
    Input<int> row_steps{"row_steps"};

    // Channels-last: channels a block (schedules/gpu_blocks.h, gpu_channel_lanes(): 32, or the
    // variants for fewer channels, 4, 8 and 16). Unused in nchw.
    GeneratorParam<int> channel_lanes{"channel_lanes", 32};
    // nchw: elements per 128-bit vector, 1 for the scalar variant (tensor_view.h, element_view();
    // runtime/plan.h picks the vector variant where the tensor allows it).
    GeneratorParam<int> vector{"vector", 1};

    Output<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb)

    void configure() {
        x.set_type(types().storage);
        x.set_dimensions(vector > 1 ? 4 : 3);
    }

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_forward_partials: a GPU pipeline");
        if (vector > 1 && view() != ViewLayout::nchw) throw std::invalid_argument("gpu_forward_partials: vectors in nchw only");
        const ElementTypes t = types();
        Var c("c");
        const int s_dim = vector > 1 ? 1 : 0;  // (the vector view's lanes come first)
        const Expr S = x.dim(s_dim).extent(), N = x.dim(s_dim + 2).extent();
        BlockSums b = blocks_of(c, S, N, steps, row_steps, gpu_block_lanes(channel_lanes), vector);
        partials(b.k, c, b.sb, b.nb) = forward_block_values(b, x, t)(b.k, c, b.sb, b.nb);

        require_view(x, view(), vector);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_block_partials(partials, b, view(), {}, {}, gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuForwardPartials, iabn_gpu_forward_partials)
