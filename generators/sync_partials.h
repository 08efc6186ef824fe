// The values one process contributes to a synchronized training pass, and their merge (the
// runtime's sync_partials_size: 2C + 1 f64 values, exchanged by the caller in an all-gather).
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

// partials(i) from the count and the two per-channel values (Funcs over c, in f64).
inline Halide::Expr pack_partials(const Halide::Var& i, const Halide::Expr& channels, const Halide::Expr& count,
                                  const Halide::Func& a, const Halide::Func& b) {
    using namespace Halide;
    Expr ca = clamp(i - 1, 0, channels - 1), cb = clamp(i - 1 - channels, 0, channels - 1);
    return select(i == 0, count, i <= channels, a(ca), b(cb));
}

struct GatheredPartials {
    Halide::Expr count, a, b;  // of process p, channel c
};

template <typename G>
GatheredPartials unpack_partials(const G& gathered, const Halide::Expr& c, const Halide::Expr& p,
                                 const Halide::Expr& channels) {
    return {gathered(0, p), gathered(1 + c, p), gathered(1 + channels + c, p)};
}

}  // namespace iabn_gen
