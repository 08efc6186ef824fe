// What the backward recovers from the forward output z and the incoming gradient dz, element by
// element: the activation's gradient dy and the normalized input xhat. Shared by the reduction
// (backward_reduce_generator.cpp) and the apply (backward_apply_generator.cpp).
#pragma once

#include "activation.h"

namespace iabn_gen {

struct Recovered {
    Halide::Expr dy, xhat;
};

// z, dz in the compute type; xhat = (act^-1(z) - bias) / g with 1/g precomputed per channel.
inline Recovered recover(const Halide::Expr& z, const Halide::Expr& dz, const Halide::Expr& act,
                         const Halide::Expr& a, const Halide::Expr& bias, const Halide::Expr& inv_g) {
    Halide::Expr y = inverse_activation(z, act, a);
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
