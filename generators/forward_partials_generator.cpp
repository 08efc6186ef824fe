// Synchronized training forward, step 1: this process's count, mean and sum of squared
// deviations per channel (sync_partials.h), for the caller to all-gather. x is only read.
#include "iabn_generator.h"
#include "statistics.h"
#include "sync_partials.h"

namespace iabn_gen {
using namespace Halide;

class ForwardPartials : public IabnGenerator<ForwardPartials, ReductionTunables> {
public:
    Input<Buffer<void, 3>> x{"x"};  // view (s, c, n), read only
    Input<int> threads{"threads"};  // the kernels' thread count: bounds the reduction's partial sums

    Output<Buffer<double, 1>> partials{"partials"};  // 2C + 1 values

    void configure() { x.set_type(types().storage); }

    void generate() {
        const ElementTypes t = types();
        Var c("c"), i("i");
        BatchStatistics st = batch_statistics(x, c, view(), t);
        // Around the mean rather than the pivot, so that processes with different pivots merge:
        // M2 = sum (x - pivot)^2 - (sum (x - pivot))^2 / m.
        Func mean("local_mean"), m2("local_m2");
        mean(c) = cast(Float(64), st.moments(c)[0]);
        Func sums = st.sums.sums;
        m2(c) = cast(Float(64), max(sums(c)[1] - sums(c)[0] * sums(c)[0] / st.m, 0));
        Func count("count");  // (the same in every channel)
        count(c) = cast(Float(64), st.m);
        partials(i) = pack_partials(i, x.dim(1).extent(), count, mean, m2);

        zero_mins(x);
        require_dense(x, view());

        // Estimates, for the autoschedulers only (see iabn_generator.h).
        estimate_tensors(x);
        partials.set_estimates(estimate_partials());
        estimate_scalars(threads);

        /* THE SCHEDULE (skipped when an autoscheduler schedules the pipeline instead) */
        if (get_target().has_gpu_feature()) {
            // (GPUs spread each channel over many blocks: block_partials.h.)
            throw std::invalid_argument("forward_partials: a CPU pipeline; GPUs run "
                                        "gpu_forward_partials and gpu_forward_row");
        }
        if (!using_autoscheduler()) {
            iabn_sched::schedule_channel_reduction(st.sums, view(), cpu_params(), get_target(), threads,
                                                   x.dim(1).extent(), {});
            iabn_sched::schedule_pivot(st.pivot, st.pivot_sum, view(), get_target());
        }
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardPartials, iabn_forward_partials)
