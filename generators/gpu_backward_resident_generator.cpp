// GPU training backward, resident variant (nchw; schedules/gpu_blocks.h says for which shapes),
// kernel 1 of 2: a GPU block per channel adds the channel's count, sum of dy and sum of dy * xhat
// (one block of block_partials.h), then finishes them as gpu_backward_finish does: the parameter
// gradients and the coefficients of backward_apply (kernel 2), which re-reads the channel while
// the L2 still holds it. No block partials in memory, one launch fewer.
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuBackwardResident : public IabnGenerator<GpuBackwardResident> {
public:
    Input<Buffer<void, 3>> z{"z"};    // forward output, view (s, c, n)
    Input<Buffer<void, 3>> dz{"dz"};  // incoming gradient, same view
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};  // read with batch statistics
    Input<Buffer<void, 1>> running_var{"running_var"};    // read with global statistics
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<bool> batch_stats{"batch_stats"};  // training && !use_global_stats
    Input<int> activation{"activation"};
    Input<double> activation_param{"activation_param"};
    Input<int> steps{"steps"};  // the channel's one block (runtime/plan.h, gpu_resident_partition())
    Input<int> row_steps{"row_steps"};

    // As gpu_backward_finish's: (weight_grad, bias_grad, grad_scale, grad_mean_dy,
    // grad_mean_dy_xhat, xhat_bias, xhat_inv_g), a buffer each.
    Output<Func> finish{"finish", 1};

    void configure() {
        const ElementTypes t = types();
        z.set_type(t.storage);
        dz.set_type(t.storage);
        for (auto* b : {&weight, &bias, &saved_invstd, &running_var}) b->set_type(t.channel);
    }

    void generate() {
        if (!get_target().has_gpu_feature() || view() != ViewLayout::nchw) {
            throw std::invalid_argument("gpu_backward_resident: a GPU pipeline for nchw views");
        }
        const ElementTypes t = types();
        Var c("c");
        const XhatChannel xc = xhat_channel(weight, bias, c, epsilon, abs_weight, t);
        BlockSums b = blocks_of(c, z.dim(0).extent(), z.dim(2).extent(), steps, row_steps, gpu_block_lanes());
        const Func values = backward_block_values(b, z, dz, xc.channel, activation, activation_param, t);
        Func merged;
        finish(c) = backward_finish(*this, c, values, RDom(0, 1, 0, 1, "the_block"), xc, merged, t);

        zero_mins(z);
        zero_mins(dz);
        require_dense(z, view());
        require_dense(dz, view());

        /* THE SCHEDULE */
        // (xc.channel stays inline: computed at the block, as the block partials compute it,
        // Halide 21 drops the thread sums and the finish from this kernel. Its loads and 1/g are
        // invariant in each thread's loops, which the compiler hoists.)
        iabn_sched::schedule_gpu_resident(finish, merged, b, activation_specializations(activation));
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuBackwardResident, iabn_gpu_backward_resident)
