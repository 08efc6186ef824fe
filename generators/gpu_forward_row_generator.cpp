// Synchronized training forward on a GPU, step 1 (after gpu_forward_partials): this process's
// row of partials (sync_partials.h: count, and each channel's mean and M2), its blocks merged in
// order. The row is what the caller all-gathers; forward_merge then merges the processes' rows.
#include "block_partials.h"
#include "iabn_generator.h"

namespace iabn_gen {
using namespace Halide;

class GpuForwardRow : public IabnGenerator<GpuForwardRow, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb): block_partials.h
    Output<Buffer<double, 1>> row{"row"};           // 2C + 1 values

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_forward_row: a GPU pipeline");
        Var c("c"), i("i");
        const RDom p = blocks_in_order(partials);
        // (Two merges, one for the means and one for the M2s: a thread of the row reads one channel's.)
        MergedMoments a = merge_moments(c, block_values(partials, c, p), partials(1, c, 0, 0));
        MergedMoments b = merge_moments(c, block_values(partials, c, p), partials(1, c, 0, 0));
        Func count("count"), mean("local_mean"), m2("local_m2");
        count(c) = a.count;
        mean(c) = a.mean;
        m2(c) = b.m2;
        const Expr channels = partials.dim(1).extent();
        row(i) = pack_partials(i, channels, count, mean, m2);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_row(row, {a.sums, b.sums}, gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuForwardRow, iabn_gpu_forward_row)
