// The GPU training passes' reductions: every block of the grid adds its share of one channel's
// elements (schedules/gpu_blocks.h says which share and in which order) and stores a few values;
// a per-channel finish merges a channel's blocks in a fixed order (sync_partials.h). Three kernels
// per pass (partials, finish, apply), and nothing in between that the runtime does not pass in.
//
// Each block's values, in partials(k, c, sb, nb):
//   forward:  k = 0 the block's element count, 1 its mean, 2 its sum of squared deviations
//             from that mean (M2): the form processes merge in (sync_partials.h), so the finish
//             is the synchronized forward's merge over blocks instead of processes;
//   backward: k = 0 the count, 1 the sum of dy, 2 the sum of dy * xhat.
// Sums are in the accumulation type (f64): no chunking (GPUs add in f64, types.h).
#pragma once

#include "Halide.h"
#include "gpu_blocks.h"
#include "common.h"  // iabn_sched::BlockSums
#include "statistics.h"
#include "sync_partials.h"  // GatheredPartials
#include "tensor_view.h"    // TensorAt
#include "types.h"

#include <vector>

namespace iabn_gen {

constexpr int block_partial_values = iabn_sched::gpu_block_values;

using iabn_sched::BlockSums;

// The blocks of view extents (S, ., N) for the partition `steps`, `row_steps` (the runtime's
// gpu_partition()), over channel c: their Vars, first elements and counts. With `vector` > 1
// (nchw: the vector view), S and `steps` count vectors of that many elements.
inline BlockSums blocks_of(const Halide::Var& c, const Halide::Expr& S, const Halide::Expr& N,
                           const Halide::Expr& steps, const Halide::Expr& row_steps, iabn_sched::GpuBlockLanes lanes,
                           int vector = 1) {
    using namespace Halide;
    BlockSums b;
    b.c = c;
    // (The vector variant's kernels are named after this Var, for the launch tests to tell them
    // apart: tests/devices/test_gpu_launches.cpp.)
    if (vector > 1) b.nb = Var("nb_vectors");
    b.s_lanes = lanes.s_lanes;
    b.n_lanes = lanes.n_lanes;
    b.channels = lanes.channels;
    b.vector = vector;
    b.span_s = steps * lanes.s_lanes;
    b.span_n = row_steps * lanes.n_lanes;
    b.steps = steps;
    b.row_steps = row_steps;
    b.S = S;
    b.N = N;
    b.first_s = b.sb * b.span_s;
    b.first_n = b.nb * b.span_n;
    b.count = cast(Float(64), min(b.span_s, S - b.first_s)) * vector * cast(Float(64), min(b.span_n, N - b.first_n));
    return b;
}

// Defines b's thread sums and tree: `terms(lane, s, n)` is the Tuple of element (s, c, n)'s
// `values` terms in the accumulation type (with vectors: `lane` of vector s; else `lane` is
// undefined). With vectors a step's lanes are the innermost reduction variable, which the
// schedule vectorizes (one vector read, the lanes added in a fixed order).
template <typename Terms>
void define_block_sums(BlockSums& b, const Terms& terms, int values) {
    using namespace Halide;
    const Var c = b.c;
    // With vectors, the innermost loop is over a step's lanes.
    b.r = b.vector > 1 ? RDom(0, b.vector, 0, b.steps, 0, b.row_steps, "block_r") : RDom(0, b.steps, 0, b.row_steps, "block_r");
    RDom& r = b.r;
    const Expr step = b.vector > 1 ? r.y : r.x, row_step = b.vector > 1 ? r.z : r.y;
    const Expr lane = b.vector > 1 ? Expr(r.x) : Expr();
    // Thread t's lanes: t % s_lanes on s, t / s_lanes on n (powers of two: a mask and a shift,
    // once per thread).
    const Expr s = b.first_s + step * b.s_lanes + b.t % b.s_lanes, n = b.first_n + row_step * b.n_lanes + b.t / b.s_lanes;
    r.where(s < b.S && n < b.N);
    std::vector<Expr> zeros(values, Expr(0.0));
    Func sums = b.vector > 1 ? b.thread_acc : b.thread_sums;
    sums(b.t, c, b.sb, b.nb) = Tuple(zeros);
    // (min: the where() keeps elements past the ends out at run time; the clamp tells bounds
    // inference.)
    const Tuple v = terms(lane, min(s, b.S - 1), min(n, b.N - 1));
    std::vector<Expr> added;
    for (int i = 0; i < values; i++) added.push_back(sums(b.t, c, b.sb, b.nb)[i] + v[i]);
    sums(b.t, c, b.sb, b.nb) = Tuple(added);
    if (b.vector > 1) b.thread_sums(b.t, c, b.sb, b.nb) = b.thread_acc(b.t, c, b.sb, b.nb);
    // The tree: thread t adds thread t + half, halving until one sum is left (a fixed order).
    Func level = b.thread_sums;
    for (int half = b.s_lanes * b.n_lanes / 2; half >= 1; half /= 2) {
        Func next("tree_" + std::to_string(half));
        std::vector<Expr> sum;
        for (int i = 0; i < values; i++) {
            sum.push_back(level(b.t, c, b.sb, b.nb)[i] + level(b.t + half, c, b.sb, b.nb)[i]);
        }
        next(b.t, c, b.sb, b.nb) = Tuple(sum);
        b.tree.push_back(next);
        level = next;
    }
    b.total(c, b.sb, b.nb) = level(0, c, b.sb, b.nb);
}

// The forward's values of each block (k: count, mean, M2) of the tensor x, view (s, c, n) (or its
// vector view, b.vector): the block's sums taken around its first element (its pivot: the
// deviations are O(std), and in f64 the pivot's distance from the mean costs nothing measurable).
// Defines b's sums.
template <typename X>
Halide::Func forward_block_values(BlockSums& b, const X& x, const ElementTypes& t) {
    using namespace Halide;
    const Var c = b.c;
    Func pivot("block_pivot");
    pivot(c, b.sb, b.nb) = cast(t.accum, t.to_compute(TensorAt<X>{x, b.vector, 0}(b.first_s, c, b.first_n)));
    define_block_sums(b, [&](const Expr& lane, const Expr& s, const Expr& n) {
        Expr v = cast(t.accum, t.to_compute(TensorAt<X>{x, b.vector, lane}(s, c, n))) - pivot(c, b.sb, b.nb);
        return Tuple(v, v * v);
    }, 2);
    const Expr s1 = b.total(c, b.sb, b.nb)[0], s2 = b.total(c, b.sb, b.nb)[1];
    Func values("forward_block_values");
    values(b.k, c, b.sb, b.nb) = select(b.k == 0, b.count, b.k == 1, pivot(c, b.sb, b.nb) + s1 / b.count,
                                        max(s2 - s1 * s1 / b.count, Expr(0.0)));
    return values;
}

// The backward's values of each block (k: count, sum of dy, sum of dy * xhat) from the forward's
// output z and the incoming gradient dz (their views, or vector views: b.vector); `channel` is
// xhat_channel()'s per-channel Func (the bias and 1/g that recover xhat). Defines b's sums.
template <typename Z>
Halide::Func backward_block_values(BlockSums& b, const Z& z, const Z& dz, const Halide::Func& channel,
                                   const Halide::Expr& activation, const Halide::Expr& activation_param,
                                   const ElementTypes& t) {
    using namespace Halide;
    const Var c = b.c;
    const Expr a = cast(t.compute, activation_param);
    define_block_sums(b, [&](const Expr& lane, const Expr& s, const Expr& n) {
        return grad_terms(TensorAt<Z>{z, b.vector, lane}, TensorAt<Z>{dz, b.vector, lane}, s, c, n, activation, a,
                          channel(c)[0], channel(c)[1], t.accum, t);
    }, 2);
    Func values("backward_block_values");
    values(b.k, c, b.sb, b.nb) = select(b.k == 0, b.count, b.k == 1, b.total(c, b.sb, b.nb)[0], b.total(c, b.sb, b.nb)[1]);
    return values;
}

// A channel's blocks in a fixed order (s ranges inner), as rows for the merges of
// sync_partials.h: the RDom over them, and block p's (count, a, b) for channel c.
template <typename P>
Halide::RDom blocks_in_order(const P& partials) {
    return Halide::RDom(0, partials.dim(2).extent(), 0, partials.dim(3).extent(), "blocks");
}

template <typename P>
GatheredPartials block_values(const P& partials, const Halide::Expr& c, const Halide::RDom& p) {
    return {partials(0, c, p.x, p.y), partials(1, c, p.x, p.y), partials(2, c, p.x, p.y)};
}

// A training forward's finish from a channel's blocks in order (`partials`: an Input of block
// values, or a Func of them): the merged moments, and every per-channel output as one Tuple
// (TrainingValues::tuple()). `g` is the generator: the finish reads its Inputs weight, bias,
// running_mean, running_var (before the update), epsilon, momentum, unbiased_running_var and
// abs_weight.
template <typename G, typename P>
Halide::Tuple forward_finish(G& g, const Halide::Var& c, const P& partials, const Halide::RDom& blocks,
                             MergedMoments& merged, const ElementTypes& t) {
    merged = merge_moments(c, block_values(partials, c, blocks), partials(1, c, 0, 0));
    return training_values(c, merged.mean, merged.var, merged.count, g.running_mean(c), g.running_var(c), g.weight,
                           g.bias, g.epsilon, g.momentum, g.unbiased_running_var, g.abs_weight, t)
        .tuple();
}

// A training backward's finish from a channel's blocks in order: the sums (`merged`), and the
// per-channel outputs as one Tuple (weight_grad, bias_grad, grad_scale, grad_mean_dy,
// grad_mean_dy_xhat, xhat_bias, xhat_inv_g). `g` is the generator: the finish reads its Inputs
// weight, saved_invstd, running_var, epsilon, abs_weight and batch_stats; `xc`, what recovers xhat.
template <typename G, typename P>
Halide::Tuple backward_finish(G& g, const Halide::Var& c, const P& partials, const Halide::RDom& blocks,
                              const XhatChannel& xc, Halide::Func& merged, const ElementTypes& t) {
    using namespace Halide;
    const Type acc = t.accum;
    merged = merge_sums(c, block_values(partials, c, blocks));
    const Expr count = merged(c)[0], sum_dy = merged(c)[1], sum_dy_xhat = merged(c)[2];
    const ParamGrads grads = param_grads(sum_dy, sum_dy_xhat, cast(acc, g.weight(c)), g.abs_weight, t.channel);
    Expr invstd = normalizing_invstd(g.batch_stats, cast(acc, g.saved_invstd(c)), cast(acc, g.running_var(c)), g.epsilon);
    const GradCoefficients k = grad_coefficients(xc.g, invstd, sum_dy, sum_dy_xhat, count, g.batch_stats, t.compute);
    Func channel = xc.channel;
    return Tuple(grads.weight_grad, grads.bias_grad, k.scale, k.mean_dy, k.mean_dy_xhat, channel(c)[0], channel(c)[1]);
}

}  // namespace iabn_gen
