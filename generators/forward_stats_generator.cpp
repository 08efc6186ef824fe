// Training forward, part 1: batch statistics of each channel and everything derived from them
// per channel: saved mean and inverse std, the running-statistics update, and the coefficients
// of the element-wise apply (forward_apply_generator.cpp).
#include "channel_math.h"
#include "iabn_generator.h"

namespace iabn_gen {
using namespace Halide;

class ForwardStats : public IabnGenerator<ForwardStats> {
public:
    Input<Buffer<void, 3>> x{"x"};  // view (s, c, n), read only
    Input<Buffer<void, 1>> weight{"weight"};
    Input<Buffer<void, 1>> bias{"bias"};
    Input<double> epsilon{"epsilon"};
    Input<double> momentum{"momentum"};
    Input<bool> unbiased_running_var{"unbiased_running_var"};
    Input<bool> abs_weight{"abs_weight"};

    Output<Buffer<void, 1>> saved_mean{"saved_mean"};
    Output<Buffer<void, 1>> saved_invstd{"saved_invstd"};
    Output<Buffer<void, 1>> running_mean{"running_mean"};  // updated in place
    Output<Buffer<void, 1>> running_var{"running_var"};    // updated in place
    Output<Buffer<void, 1>> apply_pivot{"apply_pivot"};
    Output<Buffer<void, 1>> apply_scale{"apply_scale"};
    Output<Buffer<void, 1>> apply_shift{"apply_shift"};

    void configure() {
        const ElementTypes t = types();
        x.set_type(t.storage);
        for (auto* b : {&weight, &bias}) b->set_type(t.channel);
        for (auto* b : {&saved_mean, &saved_invstd, &running_mean, &running_var}) b->set_type(t.channel);
        for (auto* b : {&apply_pivot, &apply_scale, &apply_shift}) b->set_type(t.compute);
    }

    void generate() {
        const ElementTypes t = types();
        const Type acc = t.accum;
        Var c("c");

        // Sums are taken around a per-channel pivot (the channel's first element), which keeps
        // them accurate when |mean| >> std: the centred values are O(std), not O(|mean|).
        Func pivot("pivot");
        pivot(c) = cast(acc, x(0, c, 0));
        RDom r(0, x.dim(0).extent(), 0, x.dim(2).extent(), "r");
        Expr v = cast(acc, x(r.x, c, r.y)) - pivot(c);
        Func sums("sums");
        sums(c) = Tuple(cast(acc, 0), cast(acc, 0));
        sums(c) = Tuple(sums(c)[0] + v, sums(c)[1] + v * v);

        const Expr m = elements_per_channel(x, acc);
        Func moments("moments");  // (mean, biased variance)
        Expr shifted_mean = sums(c)[0] / m;
        moments(c) = Tuple(pivot(c) + shifted_mean, max(sums(c)[1] / m - shifted_mean * shifted_mean, 0));
        Expr mean = moments(c)[0], var = moments(c)[1];
        Expr invstd = inverse_std(var, epsilon);
        Expr g = effective_scale(cast(acc, weight(c)), abs_weight, epsilon);

        saved_mean(c) = cast(t.channel, mean);
        saved_invstd(c) = cast(t.channel, invstd);
        Expr var_for_running = select(unbiased_running_var, var * m / (m - 1), var);
        running_mean(c) = undef(t.channel);
        running_mean(c) = cast(t.channel, momentum * cast(acc, running_mean(c)) + (1 - momentum) * mean);
        running_var(c) = undef(t.channel);
        running_var(c) = cast(t.channel, momentum * cast(acc, running_var(c)) + (1 - momentum) * var_for_running);

        ApplyCoefficients k = apply_coefficients(mean, invstd, g, cast(acc, bias(c)), t.compute);
        apply_pivot(c) = k.pivot;
        apply_scale(c) = k.scale;
        apply_shift(c) = k.shift;

        zero_mins(x);
        require_dense(x, view());

        /* THE SCHEDULE */
        iabn_sched::require_cpu(get_target());
        iabn_sched::schedule_channel_reduction(sums, r, view(), cpu_params(), get_target(), {});
        moments.compute_root();
        pivot.compute_root();
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::ForwardStats, iabn_forward_stats)
