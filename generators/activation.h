// The activation, its inverse and its derivative: the only place iabn states them.
// Every generator (forward apply, backward reduce, backward apply) builds on these functions.
//
// The activation is a runtime argument (an integer code, the value of iabn::Activation) so one
// kernel serves all three; pipelines specialize() on `activation == code` so each specialization
// contains only its own branch.
#pragma once

#include "Halide.h"
#include "iabn/iabn.h"

namespace iabn_gen {

inline Halide::Expr activation_code(iabn::Activation a) { return static_cast<int>(a); }

// Accurate log(1 + u) for u > -1 without a log1p intrinsic (Halide has none): the ratio corrects
// the rounding of 1 + u (Goldberg's trick), so small |u| keeps full relative precision.
// strict_float: otherwise the simplifier folds (1 + u) - 1 back to u and the correction is lost.
inline Halide::Expr log1p_accurate(const Halide::Expr& u) {
    using namespace Halide;
    Expr w = 1 + u;
    return strict_float(select(w == 1, u, log(w) * u / (w - 1)));
}

// Accurate exp(y) - 1 without an expm1 intrinsic: for small |y|, exp(y) rounds to 1 (or near it)
// and exp(y) - 1 keeps none (or few) of the digits of y. Kahan's correction multiplies by
// y / log(exp(y)), which cancels the rounding of exp(y): full relative precision near 0.
// strict_float for the same reason as log1p_accurate.
inline Halide::Expr expm1_accurate(const Halide::Expr& y) {
    using namespace Halide;
    Expr u = exp(y);
    return strict_float(select(u == 1, y, u - 1 == -1, cast(y.type(), -1), (u - 1) * y / log(u)));
}

// z = act(y). The identity branch is taken for y >= 0 (one kink rule: -0.0 included).
inline Halide::Expr activate(const Halide::Expr& y, const Halide::Expr& act, const Halide::Expr& a) {
    using namespace Halide;
    using iabn::Activation;
    Expr negative = select(act == activation_code(Activation::leaky_relu), a * y,
                           a * expm1_accurate(y));  // elu
    return select(act == activation_code(Activation::identity) || y >= 0, y, negative);
}

// y = act^-1(z). ELU saturates: where z/a <= -1 in floating point the exact inverse is -inf, so the
// log1p argument is clamped to -1 + `step`, the spacing of the stored dtype's values just below 1
// (2^-53 f64, 2^-24 f32, 2^-11 f16, 2^-8 bf16): a saturated element gets the y of the nearest
// storable z above -a, ln(step) (-36.7, -16.6, -7.6, -5.5 for a = 1). Such elements get dy = 0
// from derivative_factor(), so their (finite) y reaches no sum, only their own dx.
inline Halide::Expr inverse_activation(const Halide::Expr& z, const Halide::Expr& act, const Halide::Expr& a,
                                       const Halide::Expr& step) {
    using namespace Halide;
    using iabn::Activation;
    Type t = z.type();
    Expr z_over_a = z * (1 / a);  // a multiply, not a divide, per element: 1 / a is loop-invariant
    // Only saturated elements are clamped: an unsaturated z/a may lie closer to -1 than `step`
    // when a is not a power of two (f16 z = -0.0999755859375 with a = 0.1: 1 + z/a = 2^-12).
    Expr u = select(z_over_a <= -1, cast(t, -1) + cast(t, step), z_over_a);
    Expr negative = select(act == activation_code(Activation::leaky_relu), z_over_a, log1p_accurate(u));
    return select(act == activation_code(Activation::identity) || z >= 0, z, negative);
}

// act'(y) written in terms of z = act(y), so dy = dz * derivative_factor(z).
// leaky_relu: a on the negative side; elu: a * exp(y) = z + a (exactly 0 where saturated).
inline Halide::Expr derivative_factor(const Halide::Expr& z, const Halide::Expr& act,
                                      const Halide::Expr& a) {
    using namespace Halide;
    using iabn::Activation;
    Type t = z.type();
    Expr saturated = z * (1 / a) <= cast(t, -1);  // the same quotient inverse_activation() clamps
    Expr elu_factor = select(saturated, cast(t, 0), z + a);
    Expr negative = select(act == activation_code(Activation::leaky_relu), a, elu_factor);
    return select(act == activation_code(Activation::identity) || z >= 0, cast(t, 1), negative);
}

// The specializations every pipeline makes on the runtime activation code.
inline std::vector<Halide::Expr> activation_specializations(const Halide::Expr& act) {
    using iabn::Activation;
    return {act == activation_code(Activation::identity),
            act == activation_code(Activation::leaky_relu),
            act == activation_code(Activation::elu)};
}

}  // namespace iabn_gen
