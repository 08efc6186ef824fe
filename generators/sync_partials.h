// The values one process contributes to a synchronized training pass, and their merge (the
// runtime's sync_partials_size: 2C + 1 f64 values, exchanged by the caller in an all-gather).
//
// The same (count, a, b) values also come per block of a GPU training pass (block_partials.h),
// merged by the same functions below over blocks instead of processes.
//
// Layout of one process's partials, shared by the generators that write them (forward_partials,
// backward_partials) and those that merge the gathered rows (forward_merge, backward_merge):
//   [0]           the elements per channel of this process's tensor (the same for every channel)
//   [1, C + 1)    a per-channel value a(c)   forward: the local mean;  backward: sum of dy
//   [C + 1, 2C+1) a per-channel value b(c)   forward: the local sum of squared deviations from
//                                            that mean (M2);  backward: sum of dy * xhat
// The gathered rows are a 2-D buffer (i, p): element i of process p's partials.
#pragma once

#include "Halide.h"

namespace iabn_gen {

// partials(i) from the count and the two per-channel values (Funcs over c, in f64; element i
// reads one channel of one of them).
inline Halide::Expr pack_partials(const Halide::Var& i, const Halide::Expr& channels, const Halide::Func& count,
                                  const Halide::Func& a, const Halide::Func& b) {
    using namespace Halide;
    Expr ca = clamp(i - 1, 0, channels - 1), cb = clamp(i - 1 - channels, 0, channels - 1);
    return select(i == 0, count(ca), i <= channels, a(ca), b(cb));
}

struct GatheredPartials {
    Halide::Expr count, a, b;  // of process p, channel c
};

template <typename G>
GatheredPartials unpack_partials(const G& gathered, const Halide::Expr& c, const Halide::Expr& p,
                                 const Halide::Expr& channels) {
    return {gathered(0, p), gathered(1 + c, p), gathered(1 + channels + c, p)};
}

// Rows of (count, mean, M2) merged one after another in row order (the same bits wherever they
// are merged): as sums around one pivot every row agrees on, `pivot` (the first row's mean: the
// rows' means differ from it by O(std), so nothing cancels), S1 = sum n_p (mean_p - pivot),
// S2 = sum M2_p + n_p (mean_p - pivot)^2; then mean = pivot + S1 / n and M2 = S2 - S1^2 / n (Chan
// et al.'s pairwise merge, unrolled). `q` is row p's values, p the RDom over the rows.
// strict_float: no contraction into FMAs, which would differ between kernel targets. (Each sum
// reads only its own previous value: Halide 14 lowered a Tuple update whose elements read each
// other's previous values wrongly, writing one before the next read it.)
struct MergedMoments {
    Halide::Func sums{"merged_sums"};  // (n, S1, S2)
    Halide::Expr count, mean, var;     // var: biased
    Halide::Expr m2;                   // the sum of squared deviations from the mean
};

inline MergedMoments merge_moments(const Halide::Var& c, const GatheredPartials& q, const Halide::Expr& pivot) {
    using namespace Halide;
    MergedMoments m;
    Expr d = strict_float(q.a - pivot);
    m.sums(c) = Tuple(Expr(0.0), Expr(0.0), Expr(0.0));
    m.sums(c) = Tuple(strict_float(m.sums(c)[0] + q.count), strict_float(m.sums(c)[1] + q.count * d),
                      strict_float(m.sums(c)[2] + q.b + q.count * d * d));
    m.count = m.sums(c)[0];
    Expr s1 = m.sums(c)[1];
    m.mean = pivot + s1 / m.count;
    m.m2 = max(m.sums(c)[2] - s1 * s1 / m.count, Expr(0.0));
    m.var = m.m2 / m.count;
    return m;
}

// Rows of (count, sum a, sum b) added in row order: Func (count, a, b) over c.
inline Halide::Func merge_sums(const Halide::Var& c, const GatheredPartials& q) {
    using namespace Halide;
    Func merged("merged");
    merged(c) = Tuple(Expr(0.0), Expr(0.0), Expr(0.0));
    merged(c) = Tuple(strict_float(merged(c)[0] + q.count), strict_float(merged(c)[1] + q.a),
                      strict_float(merged(c)[2] + q.b));
    return merged;
}

}  // namespace iabn_gen
