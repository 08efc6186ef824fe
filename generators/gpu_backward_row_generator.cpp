// Synchronized training backward on a GPU, step 1 (after gpu_backward_partials): this process's
// parameter gradients and its row of partials (sync_partials.h: count, and each channel's sums of
// dy and dy * xhat), its blocks added in order. The row is what the caller all-gathers;
// backward_merge then adds the processes' rows.
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuBackwardRow : public IabnGenerator<GpuBackwardRow, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb): block_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};

    Output<Func> grads{"grads", 1};                 // (weight_grad, bias_grad)
    Output<Buffer<double, 1>> row{"row"};           // 2C + 1 values

    void configure() { weight.set_type(types().channel); }

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_backward_row: a GPU pipeline");
        const ElementTypes t = types();
        Var c("c"), i("i");
        const RDom p = blocks_in_order(partials);
        // (A merge per consumer: the gradients' thread reads one channel, the row's two.)
        Func for_grads = merge_sums(c, block_values(partials, c, p));
        Func for_a = merge_sums(c, block_values(partials, c, p));
        Func for_b = merge_sums(c, block_values(partials, c, p));
        const ParamGrads g = param_grads(for_grads(c)[1], for_grads(c)[2], cast(t.accum, weight(c)), abs_weight, t.channel);
        grads(c) = Tuple(g.weight_grad, g.bias_grad);
        Func count("count"), sum_dy("sum_dy"), sum_dy_xhat("sum_dy_xhat");
        count(c) = for_a(c)[0];
        sum_dy(c) = for_a(c)[1];
        sum_dy_xhat(c) = for_b(c)[2];
        row(i) = pack_partials(i, partials.dim(1).extent(), count, sum_dy, sum_dy_xhat);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_channel_finish(for_grads, grads, gpu_params());
        iabn_sched::schedule_gpu_row(row, {for_a, for_b}, gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuBackwardRow, iabn_gpu_backward_row)
