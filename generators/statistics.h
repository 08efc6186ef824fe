// The per-channel reductions of the training passes and what is derived from them, shared by
// the two-pass generators (forward_stats, backward_reduce) and the fused ones (forward_fused,
// backward_fused), which compute them inside their channel loop.
#pragma once

#include "backward_math.h"
#include "channel_math.h"
#include "tensor_view.h"
#include "types.h"

namespace iabn_gen {

// Batch statistics of x(s, c, n): sums are taken around a per-channel pivot (the channel's first
// element), which keeps them accurate when |mean| >> std: the centred values are O(std), not
// O(|mean|). moments(c) = (mean, biased variance), in the accumulation type.
struct BatchStatistics {
    Halide::Func pivot{"pivot"}, sums{"sums"}, moments{"moments"};
    Halide::RDom r;   // over (s, n) of one channel
    Halide::Expr m;   // elements per channel
};

template <typename X>
BatchStatistics batch_statistics(const X& x, const Halide::Var& c, const ElementTypes& t) {
    using namespace Halide;
    const Type acc = t.accum;
    BatchStatistics st;
    st.pivot(c) = cast(acc, t.to_compute(x(0, c, 0)));
    st.r = RDom(0, x.dim(0).extent(), 0, x.dim(2).extent(), "r");
    Expr v = cast(acc, t.to_compute(x(st.r.x, c, st.r.y))) - st.pivot(c);
    st.sums(c) = Tuple(cast(acc, 0), cast(acc, 0));
    st.sums(c) = Tuple(st.sums(c)[0] + v, st.sums(c)[1] + v * v);
    st.m = elements_per_channel(x, acc);
    Expr shifted_mean = st.sums(c)[0] / st.m;
    st.moments(c) = Tuple(st.pivot(c) + shifted_mean, max(st.sums(c)[1] / st.m - shifted_mean * shifted_mean, 0));
    return st;
}

// The training forward's per-channel outputs: saved statistics, and the running statistics
// updated in place (Outputs that read themselves).
struct TrainingOutputs {
    Halide::Func saved_mean, saved_invstd, running_mean, running_var;
};

// mean and var (biased) of m elements per channel, in the accumulation type.
inline void define_training_outputs(const TrainingOutputs& out, const Halide::Var& c, const Halide::Expr& mean,
                                    const Halide::Expr& var, const Halide::Expr& m, const Halide::Expr& invstd,
                                    const Halide::Expr& momentum, const Halide::Expr& unbiased_running_var,
                                    Halide::Type channel) {
    using namespace Halide;
    Type acc = mean.type();
    Func running_mean = out.running_mean, running_var = out.running_var;  // handles to the Outputs
    Func saved_mean = out.saved_mean, saved_invstd = out.saved_invstd;
    saved_mean(c) = cast(channel, mean);
    saved_invstd(c) = cast(channel, invstd);
    Expr var_for_running = select(unbiased_running_var, var * m / (m - 1), var);
    // strict_float: as written, so momentum 1 keeps the running statistics exactly and momentum 0
    // takes the batch's (Halide's default float semantics may contract or reorder the terms).
    running_mean(c) = undef(channel);
    running_mean(c) = cast(channel, strict_float(momentum * cast(acc, running_mean(c)) + (1 - momentum) * mean));
    running_var(c) = undef(channel);
    running_var(c) = cast(channel, strict_float(momentum * cast(acc, running_var(c)) + (1 - momentum) * var_for_running));
}

// z = act((x - pivot) * scale + shift), in the compute type.
inline Halide::Expr normalize_activate(const Halide::Expr& x, const Halide::Expr& pivot, const Halide::Expr& scale,
                                       const Halide::Expr& shift, const Halide::Expr& act, const Halide::Expr& a) {
    return activate((x - pivot) * scale + shift, act, a);
}

// Backward sums over (s, n) of one channel: (sum dy, sum dy * xhat), in the accumulation type.
struct GradSums {
    Halide::Func sums{"grad_sums"};
    Halide::RDom r;
};

template <typename Z>
GradSums grad_sums(const Z& z, const Z& dz, const Halide::Var& c, const Halide::Expr& act, const Halide::Expr& a,
                   const Halide::Expr& bias, const Halide::Expr& inv_g, const ElementTypes& t) {
    using namespace Halide;
    const Type acc = t.accum;
    GradSums gs;
    gs.r = RDom(0, z.dim(0).extent(), 0, z.dim(2).extent(), "r");
    Recovered e = recover(t, z(gs.r.x, c, gs.r.y), dz(gs.r.x, c, gs.r.y), act, a, bias, inv_g);
    gs.sums(c) = Tuple(cast(acc, 0), cast(acc, 0));
    gs.sums(c) = Tuple(gs.sums(c)[0] + cast(acc, e.dy), gs.sums(c)[1] + cast(acc, e.dy * e.xhat));
    return gs;
}

// dL/dweight and dL/dbias from the sums; with abs_weight, g = |w| + eps, so dL/dw = dL/dg * sign(w).
inline void define_param_grads(Halide::Func weight_grad, Halide::Func bias_grad, const Halide::Var& c,
                               const Halide::Expr& sum_dy, const Halide::Expr& sum_dy_xhat, const Halide::Expr& w,
                               const Halide::Expr& abs_weight, Halide::Type channel) {
    using namespace Halide;
    Expr sign = select(abs_weight && w < 0, cast(w.type(), -1), cast(w.type(), 1));
    weight_grad(c) = cast(channel, sum_dy_xhat * sign);
    bias_grad(c) = cast(channel, sum_dy);
}

// dx from dy and xhat: scale * (dy - mean_dy - xhat * mean_dy_xhat), or scale * dy (global).
inline Halide::Expr grad_input(const Recovered& e, const GradCoefficients& k, const Halide::Expr& batch_stats) {
    return Halide::select(batch_stats, k.scale * (e.dy - k.mean_dy - e.xhat * k.mean_dy_xhat), k.scale * e.dy);
}

// The per-channel part of a training forward: batch statistics, the saved and running outputs,
// and the coefficients of the apply. Shared by forward_stats and forward_fused.
struct TrainingForward {
    BatchStatistics st;
    ApplyCoefficients k;
};

// Everything a training forward derives per channel from the batch's mean and biased variance
// over m elements: the saved and running outputs, and the coefficients of the apply. Shared by
// the local forwards (training_forward) and the synchronized one (forward_merge).
template <typename C>
ApplyCoefficients finish_training_forward(const TrainingOutputs& outputs, const Halide::Var& c, const Halide::Expr& mean,
                                          const Halide::Expr& var, const Halide::Expr& m, const C& weight,
                                          const C& bias, const Halide::Expr& epsilon, const Halide::Expr& momentum,
                                          const Halide::Expr& unbiased_running_var, const Halide::Expr& abs_weight,
                                          const ElementTypes& t) {
    using namespace Halide;
    Expr invstd = inverse_std(var, epsilon);
    define_training_outputs(outputs, c, mean, var, m, invstd, momentum, unbiased_running_var, t.channel);
    Expr g = effective_scale(cast(t.accum, weight(c)), abs_weight, epsilon);
    return apply_coefficients(mean, invstd, g, cast(t.accum, bias(c)), t.compute);
}

template <typename X, typename C>
TrainingForward training_forward(const X& x, const C& weight, const C& bias, const Halide::Var& c,
                                 const TrainingOutputs& outputs, const Halide::Expr& epsilon,
                                 const Halide::Expr& momentum, const Halide::Expr& unbiased_running_var,
                                 const Halide::Expr& abs_weight, const ElementTypes& t) {
    TrainingForward f{batch_statistics(x, c, t), {}};
    f.k = finish_training_forward(outputs, c, f.st.moments(c)[0], f.st.moments(c)[1], f.st.m, weight, bias, epsilon,
                                  momentum, unbiased_running_var, abs_weight, t);
    return f;
}

// The local part of a backward: (bias, 1/g) for recovering xhat, the sums of dy and dy * xhat
// over this tensor, and the parameter gradients from them. Shared by every backward (local and
// synchronized).
struct LocalBackward {
    Halide::Func channel{"channel"};  // (bias, 1/g) in the compute type, as the element loops use them
    GradSums gs;
    Halide::Expr g;  // the effective scale, in the accumulation type
};

template <typename Z, typename C>
LocalBackward local_backward(const Z& z, const Z& dz, const C& weight, const C& bias, const Halide::Var& c,
                             Halide::Func weight_grad, Halide::Func bias_grad, const Halide::Expr& epsilon,
                             const Halide::Expr& abs_weight, const Halide::Expr& activation,
                             const Halide::Expr& activation_param, const ElementTypes& t) {
    using namespace Halide;
    LocalBackward b;
    Expr w = cast(t.accum, weight(c));
    b.g = effective_scale(w, abs_weight, epsilon);
    b.channel(c) = Tuple(cast(t.compute, bias(c)), cast(t.compute, 1 / b.g));
    b.gs = grad_sums(z, dz, c, activation, cast(t.compute, activation_param), b.channel(c)[0], b.channel(c)[1], t);
    define_param_grads(weight_grad, bias_grad, c, b.gs.sums(c)[0], b.gs.sums(c)[1], w, abs_weight, t.channel);
    return b;
}

// A local backward and the coefficients of dx from its own sums. Shared by backward_reduce and
// backward_fused.
struct TrainingBackward : LocalBackward {
    GradCoefficients k;
};

template <typename Z, typename C>
TrainingBackward training_backward(const Z& z, const Z& dz, const C& weight, const C& bias, const C& saved_invstd,
                                   const C& running_var, const Halide::Var& c, Halide::Func weight_grad,
                                   Halide::Func bias_grad, const Halide::Expr& epsilon, const Halide::Expr& abs_weight,
                                   const Halide::Expr& batch_stats, const Halide::Expr& activation,
                                   const Halide::Expr& activation_param, const ElementTypes& t) {
    using namespace Halide;
    TrainingBackward b;
    static_cast<LocalBackward&>(b) = local_backward(z, dz, weight, bias, c, weight_grad, bias_grad, epsilon,
                                                    abs_weight, activation, activation_param, t);
    Expr invstd = normalizing_invstd(batch_stats, cast(t.accum, saved_invstd(c)), cast(t.accum, running_var(c)), epsilon);
    b.k = grad_coefficients(b.g, invstd, b.gs.sums(c)[0], b.gs.sums(c)[1], elements_per_channel(z, t.accum),
                            batch_stats, t.compute);
    return b;
}

}  // namespace iabn_gen
