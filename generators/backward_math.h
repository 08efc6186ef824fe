// What the backward recovers from the forward output z and the incoming gradient dz, element by
// element: the activation's gradient dy and the normalized input xhat. Shared by the reduction
// (backward_reduce_generator.cpp) and the apply (backward_apply_generator.cpp).
#pragma once

#include "activation.h"
#include "types.h"

namespace iabn_gen {

struct Recovered {
    Halide::Expr dy, xhat;
};

// z, dz as stored; xhat = (act^-1(z) - bias) / g with 1/g precomputed per channel, in the
// compute type.
inline Recovered recover(const ElementTypes& t, const Halide::Expr& z_stored, const Halide::Expr& dz_stored,
                         const Halide::Expr& act, const Halide::Expr& a, const Halide::Expr& bias,
                         const Halide::Expr& inv_g) {
    Halide::Expr z = t.to_compute(z_stored), dz = t.to_compute(dz_stored);
    Halide::Expr y = inverse_activation(z, act, a, t.spacing_below_one());
    return {dz * derivative_factor(z, act, a), (y - bias) * inv_g};
}

// Backward element loops specialize on every (statistics mode, activation) pair.
inline std::vector<Halide::Expr> backward_specializations(const Halide::Expr& batch_stats, const Halide::Expr& act) {
    std::vector<Halide::Expr> cases;
    for (const Halide::Expr& a : activation_specializations(act)) {
        cases.push_back(batch_stats && a);
        cases.push_back(!batch_stats && a);
    }
    return cases;
}

}  // namespace iabn_gen
