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

}  // namespace iabn_gen
