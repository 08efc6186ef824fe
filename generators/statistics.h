// The per-channel reductions of the training passes and what is derived from them, shared by
// the two-pass generators (forward_stats, backward_reduce) and the fused ones (forward_fused,
// backward_fused), which compute them inside their channel loop.
#pragma once

#include "backward_math.h"
#include "channel_math.h"
#include "common.h"  // iabn_sched::ChannelSums
#include "tensor_view.h"
#include "types.h"

#include <string>

namespace iabn_gen {

using iabn_sched::ChannelSums;

// The bounds of an f32 chunk (channel_sums() below): about this many elements of a channel...
constexpr int chunk_elements = 4096;
// ... and in nchw never more than one row of at most this many: longer rows are added in f64.
constexpr int longest_chunked_row = 16384;

// The per-channel sums of per-element terms over the (s, n) elements of every channel of a view
// with extents (S, C, N): the reduction of every training pass (batch statistics: the centred
// value and its square; backward: dy and dy * xhat). `terms(s, n, type)` gives the terms of
// element (s, c, n) computed in `type`. The sums are in t.accum (f64).
//
// On CPUs with an f32 compute type (t.chunked_sums), the terms are added in f32 over chunks of a
// channel's elements, and each chunk's total in f64: an f32 add takes twice the lanes of an f64
// one and no conversion, which is what a 16-bit pass, moving half the bytes, cannot afford. A
// chunk bounds what one f32 sum takes, so its error stays at the f32 budget (tests/support/error_measures.h):
//   nchw: R = max(1, chunk_elements / S) whole rows (vector lanes carry on across the rows of a
//         chunk, so a short row costs no horizontal add of its own); a channel whose rows are longer
//         than longest_chunked_row adds in f64 throughout (`direct`);
//   nhwc: R = clamp(chunk_elements / C, 16, chunk_elements) rows of C channels (a channel per
//         lane: at most chunk_elements terms in a sum).
// The chunks depend on the shape only, never on the thread count: the same bits with any threads.
// Elsewhere (f64 tensors, GPUs) every term is added in f64.
template <typename Terms>
ChannelSums channel_sums(const std::string& name, const Terms& terms, const Halide::Var& c, const Halide::Expr& S,
                         const Halide::Expr& C, const Halide::Expr& N, ViewLayout layout, const ElementTypes& t) {
    using namespace Halide;
    auto zeros = [](Type type, size_t k) {
        std::vector<Expr> z(k, cast(type, 0));
        return Tuple(z);
    };
    // sum(c) + widened terms, element by element.
    auto add = [](const FuncRef& sum, const Tuple& more, Type type) {
        std::vector<Expr> out;
        for (size_t i = 0; i < more.size(); i++) out.push_back(Tuple(sum)[i] + cast(type, more[i]));
        return Tuple(out);
    };
    ChannelSums cs;
    cs.all = RDom(0, S, 0, N, name + "_r");
    const bool long_rows_direct = layout == ViewLayout::nchw;
    if (!t.chunked_sums || long_rows_direct) {
        const Tuple v = terms(cs.all.x, cs.all.y, t.accum);
        cs.direct = Func(t.chunked_sums ? name + "_direct" : name);
        cs.direct(c) = zeros(t.accum, v.size());
        cs.direct(c) = add(cs.direct(c), v, t.accum);
        if (!t.chunked_sums) {
            cs.sums = cs.direct;
            return cs;
        }
    }
    Var q("q");
    Expr rows, count;  // per chunk; chunks per channel
    Tuple v = Tuple(Expr());
    if (layout == ViewLayout::nchw) {
        rows = max(1, chunk_elements / S);
        cs.in_chunk = RDom(0, S, 0, rows, name + "_rc");
        cs.in_chunk.where(q * rows + cs.in_chunk.y < N);
        // (min: the where() keeps rows past N out at run time; the clamp tells bounds inference.)
        v = terms(cs.in_chunk.x, min(q * rows + cs.in_chunk.y, N - 1), t.compute);
        count = (N + rows - 1) / rows;
        cs.chunked = S <= longest_chunked_row;
    } else {
        rows = clamp(chunk_elements / C, 16, chunk_elements);
        cs.in_chunk = RDom(0, rows, 0, N, name + "_rc");
        cs.in_chunk.where(q * rows + cs.in_chunk.x < S);
        v = terms(min(q * rows + cs.in_chunk.x, S - 1), cs.in_chunk.y, t.compute);
        count = (S + rows - 1) / rows;
        cs.chunked = Halide::Internal::const_true();
    }
    cs.chunk = Func(name + "_chunk");
    cs.chunk(c, q) = zeros(t.compute, v.size());
    cs.chunk(c, q) = add(cs.chunk(c, q), v, t.compute);
    cs.chunks = RDom(0, count, name + "_q");
    cs.total = Func(name + "_total");
    cs.total(c) = zeros(t.accum, v.size());
    cs.total(c) = add(cs.total(c), Tuple(cs.chunk(c, cs.chunks.x)), t.accum);
    if (cs.has_direct()) {
        cs.sums = Func(name);
        cs.sums(c) = select(cs.chunked, Tuple(cs.total(c)), Tuple(cs.direct(c)));
    } else {
        cs.sums = cs.total;
    }
    return cs;
}

// Batch statistics of x(s, c, n): sums are taken around a per-channel pivot, which keeps them
// accurate when |mean| >> std: the centred values are O(std), not O(|mean|). The pivot is the
// mean of the channel's first pivot_elements elements or a few more (the first min(S, 64) of each
// of the first rows, as many rows as reach 64: whole loops, no division per element), rounded to
// the compute type: close to the channel's mean, so that var = S2/m - (S1/m)^2 cancels little (a
// pivot d standard deviations away multiplies the relative error of S2 by 1 + d^2, which f32
// chunk sums cannot afford). The pivot is held in the compute type (what the element loops
// subtract; exact in the accumulation type too). moments(c) = (mean, biased variance), in the
// accumulation type.
constexpr int pivot_elements = 64;

struct BatchStatistics {
    Halide::Func pivot{"pivot"}, pivot_sum{"pivot_sum"}, moments{"moments"};
    ChannelSums sums;  // (sum of x - pivot, sum of its squares)
    Halide::Expr m;    // elements per channel
};

template <typename X>
BatchStatistics batch_statistics(const X& x, const Halide::Var& c, ViewLayout layout, const ElementTypes& t) {
    using namespace Halide;
    const Type acc = t.accum;
    BatchStatistics st;
    // The centred value is the difference of two values exact in either type.
    const Expr row_part = min(x.dim(0).extent(), pivot_elements);
    const Expr rows = min(x.dim(2).extent(), (pivot_elements + row_part - 1) / row_part);
    RDom i(0, row_part, 0, rows, "pivot_r");
    st.pivot_sum(c) = cast(acc, 0);
    st.pivot_sum(c) += cast(acc, t.to_compute(x(i.x, c, i.y)));
    st.pivot(c) = cast(t.compute, st.pivot_sum(c) / (row_part * rows));
    auto centred = [&](const Expr& s, const Expr& n, Type type) {
        Expr v = cast(type, t.to_compute(x(s, c, n))) - cast(type, st.pivot(c));
        return Tuple(v, v * v);
    };
    st.sums = channel_sums("sums", centred, c, x.dim(0).extent(), x.dim(1).extent(), x.dim(2).extent(), layout, t);
    Func sums = st.sums.sums;
    st.m = elements_per_channel(x, acc);
    Expr shifted_mean = sums(c)[0] / st.m;
    st.moments(c) = Tuple(cast(acc, st.pivot(c)) + shifted_mean, max(sums(c)[1] / st.m - shifted_mean * shifted_mean, 0));
    return st;
}

// The training forward's per-channel outputs: saved statistics, and the running statistics
// updated in place (Outputs that read themselves).
struct TrainingOutputs {
    Halide::Func saved_mean, saved_invstd, running_mean, running_var;
};

// Their values for channel c, from the batch's mean and biased variance over m elements (in the
// accumulation type) and the running statistics before the update (`running_mean`,
// `running_var`, as stored), and the coefficients of the apply.
struct TrainingValues {
    Halide::Expr saved_mean, saved_invstd, running_mean, running_var;
    ApplyCoefficients k;
    // All of them as the one Tuple-valued Output of a finish or merge, in the order the runtime
    // binds its buffers: (saved_mean, saved_invstd, running_mean, running_var, pivot, scale, shift).
    Halide::Tuple tuple() const {
        return Halide::Tuple(saved_mean, saved_invstd, running_mean, running_var, k.pivot, k.scale, k.shift);
    }
};

template <typename C>
TrainingValues training_values(const Halide::Var& c, const Halide::Expr& mean, const Halide::Expr& var,
                               const Halide::Expr& m, const Halide::Expr& running_mean, const Halide::Expr& running_var,
                               const C& weight, const C& bias, const Halide::Expr& epsilon,
                               const Halide::Expr& momentum, const Halide::Expr& unbiased_running_var,
                               const Halide::Expr& abs_weight, const ElementTypes& t) {
    using namespace Halide;
    Type acc = mean.type();
    TrainingValues v;
    Expr invstd = inverse_std(var, epsilon);
    v.saved_mean = cast(t.channel, mean);
    v.saved_invstd = cast(t.channel, invstd);
    Expr var_for_running = select(unbiased_running_var, var * m / (m - 1), var);
    // strict_float: as written, so momentum 1 keeps the running statistics exactly and momentum 0
    // takes the batch's (Halide's default float semantics may contract or reorder the terms).
    v.running_mean = cast(t.channel, strict_float(momentum * cast(acc, running_mean) + (1 - momentum) * mean));
    v.running_var = cast(t.channel, strict_float(momentum * cast(acc, running_var) + (1 - momentum) * var_for_running));
    Expr g = effective_scale(cast(t.accum, weight(c)), abs_weight, epsilon);
    v.k = apply_coefficients(mean, invstd, g, cast(t.accum, bias(c)), t.compute);
    return v;
}

// z = act((x - pivot) * scale + shift), in the compute type.
inline Halide::Expr normalize_activate(const Halide::Expr& x, const Halide::Expr& pivot, const Halide::Expr& scale,
                                       const Halide::Expr& shift, const Halide::Expr& act, const Halide::Expr& a) {
    return activate((x - pivot) * scale + shift, act, a);
}

// Element (s, c, n)'s backward terms (dy, dy * xhat): dy and xhat in the compute type (the
// element loops' own arithmetic), widened to `type`.
template <typename Z>
Halide::Tuple grad_terms(const Z& z, const Z& dz, const Halide::Expr& s, const Halide::Var& c, const Halide::Expr& n,
                         const Halide::Expr& act, const Halide::Expr& a, const Halide::Expr& bias,
                         const Halide::Expr& inv_g, Halide::Type type, const ElementTypes& t) {
    using namespace Halide;
    Recovered e = recover(t, z(s, c, n), dz(s, c, n), act, a, bias, inv_g);
    return Tuple(cast(type, e.dy), cast(type, e.dy * e.xhat));
}

// Backward sums over (s, n) of one channel: (sum dy, sum dy * xhat), in the accumulation type.
template <typename Z>
ChannelSums grad_sums(const Z& z, const Z& dz, const Halide::Var& c, const Halide::Expr& act, const Halide::Expr& a,
                      const Halide::Expr& bias, const Halide::Expr& inv_g, ViewLayout layout, const ElementTypes& t) {
    using namespace Halide;
    auto recovered = [&](const Expr& s, const Expr& n, Type type) {
        return grad_terms(z, dz, s, c, n, act, a, bias, inv_g, type, t);
    };
    return channel_sums("grad_sums", recovered, c, z.dim(0).extent(), z.dim(1).extent(), z.dim(2).extent(), layout, t);
}

// dL/dweight and dL/dbias from the sums; with abs_weight, g = |w| + eps, so dL/dw = dL/dg * sign(w).
struct ParamGrads {
    Halide::Expr weight_grad, bias_grad;
};

inline ParamGrads param_grads(const Halide::Expr& sum_dy, const Halide::Expr& sum_dy_xhat, const Halide::Expr& w,
                              const Halide::Expr& abs_weight, Halide::Type channel) {
    using namespace Halide;
    Expr sign = select(abs_weight && w < 0, cast(w.type(), -1), cast(w.type(), 1));
    return {cast(channel, sum_dy_xhat * sign), cast(channel, sum_dy)};
}

inline void define_param_grads(Halide::Func weight_grad, Halide::Func bias_grad, const Halide::Var& c,
                               const Halide::Expr& sum_dy, const Halide::Expr& sum_dy_xhat, const Halide::Expr& w,
                               const Halide::Expr& abs_weight, Halide::Type channel) {
    const ParamGrads g = param_grads(sum_dy, sum_dy_xhat, w, abs_weight, channel);
    weight_grad(c) = g.weight_grad;
    bias_grad(c) = g.bias_grad;
}

// What a backward recovers xhat with, per channel: (bias, 1/g) in the compute type, as the element
// loops use them, and the effective scale g in the accumulation type.
struct XhatChannel {
    Halide::Func channel{"channel"};
    Halide::Expr g;
};

template <typename C>
XhatChannel xhat_channel(const C& weight, const C& bias, const Halide::Var& c, const Halide::Expr& epsilon,
                         const Halide::Expr& abs_weight, const ElementTypes& t) {
    using namespace Halide;
    XhatChannel x;
    x.g = effective_scale(cast(t.accum, weight(c)), abs_weight, epsilon);
    x.channel(c) = Tuple(cast(t.compute, bias(c)), cast(t.compute, 1 / x.g));
    return x;
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
    Func saved_mean = outputs.saved_mean, saved_invstd = outputs.saved_invstd;  // handles to the Outputs
    Func running_mean = outputs.running_mean, running_var = outputs.running_var;
    running_mean(c) = undef(t.channel);
    running_var(c) = undef(t.channel);
    const TrainingValues v = training_values(c, mean, var, m, running_mean(c), running_var(c), weight, bias, epsilon,
                                             momentum, unbiased_running_var, abs_weight, t);
    saved_mean(c) = v.saved_mean;
    saved_invstd(c) = v.saved_invstd;
    running_mean(c) = v.running_mean;
    running_var(c) = v.running_var;
    return v.k;
}

template <typename X, typename C>
TrainingForward training_forward(const X& x, const C& weight, const C& bias, const Halide::Var& c,
                                 const TrainingOutputs& outputs, const Halide::Expr& epsilon,
                                 const Halide::Expr& momentum, const Halide::Expr& unbiased_running_var,
                                 const Halide::Expr& abs_weight, ViewLayout layout, const ElementTypes& t) {
    TrainingForward f{batch_statistics(x, c, layout, t), {}};
    f.k = finish_training_forward(outputs, c, f.st.moments(c)[0], f.st.moments(c)[1], f.st.m, weight, bias, epsilon,
                                  momentum, unbiased_running_var, abs_weight, t);
    return f;
}

// The local part of a backward: (bias, 1/g) for recovering xhat, the sums of dy and dy * xhat
// over this tensor, and the parameter gradients from them. Shared by every backward (local and
// synchronized).
struct LocalBackward {
    Halide::Func channel{"channel"};  // (bias, 1/g) in the compute type, as the element loops use them
    ChannelSums gs;  // (sum dy, sum dy * xhat)
    Halide::Expr g;  // the effective scale, in the accumulation type
};

template <typename Z, typename C>
LocalBackward local_backward(const Z& z, const Z& dz, const C& weight, const C& bias, const Halide::Var& c,
                             Halide::Func weight_grad, Halide::Func bias_grad, const Halide::Expr& epsilon,
                             const Halide::Expr& abs_weight, const Halide::Expr& activation,
                             const Halide::Expr& activation_param, ViewLayout layout, const ElementTypes& t) {
    using namespace Halide;
    LocalBackward b;
    Expr w = cast(t.accum, weight(c));
    XhatChannel x = xhat_channel(weight, bias, c, epsilon, abs_weight, t);
    b.channel = x.channel;
    b.g = x.g;
    b.gs = grad_sums(z, dz, c, activation, cast(t.compute, activation_param), b.channel(c)[0], b.channel(c)[1], layout, t);
    Func sums = b.gs.sums;
    define_param_grads(weight_grad, bias_grad, c, sums(c)[0], sums(c)[1], w, abs_weight, t.channel);
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
                                   const Halide::Expr& activation_param, ViewLayout layout, const ElementTypes& t) {
    using namespace Halide;
    TrainingBackward b;
    static_cast<LocalBackward&>(b) = local_backward(z, dz, weight, bias, c, weight_grad, bias_grad, epsilon,
                                                    abs_weight, activation, activation_param, layout, t);
    Expr invstd = normalizing_invstd(batch_stats, cast(t.accum, saved_invstd(c)), cast(t.accum, running_var(c)), epsilon);
    Func sums = b.gs.sums;
    b.k = grad_coefficients(b.g, invstd, sums(c)[0], sums(c)[1], elements_per_channel(z, t.accum), batch_stats,
                            t.compute);
    return b;
}

}  // namespace iabn_gen
