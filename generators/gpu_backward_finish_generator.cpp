// GPU training backward, kernel 2 of 3: each channel's block partials (gpu_backward_partials)
// added in block order, and everything derived from the sums per channel, as backward_reduce
// derives it: the parameter gradients and the coefficients of backward_apply (kernel 3).
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuBackwardFinish : public IabnGenerator<GpuBackwardFinish, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb): block_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> saved_invstd{"saved_invstd"};  // read with batch statistics
    Input<Buffer<void, 1>> running_var{"running_var"};    // read with global statistics
    Input<double> epsilon{"epsilon"};
    Input<bool> abs_weight{"abs_weight"};
    Input<bool> batch_stats{"batch_stats"};  // training && !use_global_stats

    // One Func, one loop: (weight_grad, bias_grad, grad_scale, grad_mean_dy, grad_mean_dy_xhat,
    // xhat_bias, xhat_inv_g), a buffer each.
    Output<Func> finish{"finish", 1};

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&weight, &bias, &saved_invstd, &running_var}) b->set_type(t.channel);
    }

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_backward_finish: a GPU pipeline");
        const ElementTypes t = types();
        Var c("c");
        // The blocks in order, s ranges inner: the same bits from run to run.
        Func merged;
        const XhatChannel xc = xhat_channel(weight, bias, c, epsilon, abs_weight, t);
        finish(c) = backward_finish(*this, c, partials, blocks_in_order(partials), xc, merged, t);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_channel_finish(merged, finish, gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuBackwardFinish, iabn_gpu_backward_finish)
