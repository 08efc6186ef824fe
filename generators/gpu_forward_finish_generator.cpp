// GPU training forward, kernel 2 of 3: each channel's block partials (gpu_forward_partials)
// merged in block order into the batch statistics, and everything derived from them per channel,
// as forward_merge derives it from processes' partials: saved statistics, the running-statistics
// update and the coefficients of forward_apply (kernel 3).
#include "block_partials.h"
#include "iabn_generator.h"
#include "statistics.h"

namespace iabn_gen {
using namespace Halide;

class GpuForwardFinish : public IabnGenerator<GpuForwardFinish, NoTunables, GpuChannelTunables> {
public:
    Input<Buffer<double, 4>> partials{"partials"};  // (k, c, sb, nb): block_partials.h
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<Buffer<void, 1>> running_mean{"running_mean"};  // before the update (finish writes it)
    Input<Buffer<void, 1>> running_var{"running_var"};    // before the update (finish writes it)
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    // One Func, one loop: (saved_mean, saved_invstd, running_mean, running_var, apply_pivot,
    // apply_scale, apply_shift), a buffer each; the runtime binds the running statistics' memory
    // both as the Inputs above and as elements 2 and 3 (each thread reads its channel's values,
    // then writes them).
    Output<Func> finish{"finish", 1};

    void configure() {
        const ElementTypes t = types();
        for (auto* b : {&weight, &bias, &running_mean, &running_var}) b->set_type(t.channel);
    }

    void generate() {
        if (!get_target().has_gpu_feature()) throw std::invalid_argument("gpu_forward_finish: a GPU pipeline");
        const ElementTypes t = types();
        Var c("c");
        // The blocks in order, s ranges inner: the same bits from run to run.
        MergedMoments merged;
        finish(c) = forward_finish(*this, c, partials, blocks_in_order(partials), merged, t);
        partials.dim(0).set_bounds(0, block_partial_values);

        /* THE SCHEDULE */
        iabn_sched::schedule_gpu_channel_finish(merged.sums, finish, gpu_params());
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::GpuForwardFinish, iabn_gpu_forward_finish)
