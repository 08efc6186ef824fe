// GPU training forward, resident variant (nchw; schedules/gpu_blocks.h says for which shapes),
// kernel 1 of 2: a GPU block per channel adds all of the channel's elements (one block of
// block_partials.h), then merges and finishes it as gpu_forward_finish does: saved statistics,
// the running-statistics update and the coefficients of forward_apply (kernel 2), which re-reads
// the channel while the L2 still holds it. No block partials in memory, one launch fewer.
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuForwardResident : public IabnGenerator<GpuForwardResident> {
public:
    Input<Buffer<void, 3>> x{"x"};  // view (s, c, n), read only
    Input<int> steps{"steps"};      // the channel's one block (runtime/plan.h, gpu_resident_partition())
    Input<int> row_steps{"row_steps"};
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> running_mean{"running_mean"};  // before the update (the kernel writes it)
    Input<Buffer<void, 1>> running_var{"running_var"};    // before the update (the kernel writes it)
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    // As gpu_forward_finish's: (saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
    // apply_scale, apply_shift), a buffer each.
    Output<Func> finish{"finish", 1};

    void configure() {
        const ElementTypes t = types();
        x.set_type(t.storage);
        for (auto* b : {&weight, &bias, &running_mean, &running_var}) b->set_type(t.channel);
    }

    void generate() {
        if (!get_target().has_gpu_feature() || view() != ViewLayout::nchw) {
            throw std::invalid_argument("gpu_forward_resident: a GPU pipeline for nchw views");
        }
        const ElementTypes t = types();
        Var c("c");
        BlockSums b = blocks_of(c, x.dim(0).extent(), x.dim(2).extent(), steps, row_steps, gpu_block_lanes());
        const Func values = forward_block_values(b, x, t);
        MergedMoments merged;
        finish(c) = forward_finish(*this, c, values, RDom(0, 1, 0, 1, "the_block"), merged, t);

        zero_mins(x);
        require_dense(x, view());

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_resident(finish, merged.sums, b, {});
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuForwardResident, iabn_gpu_forward_resident)
