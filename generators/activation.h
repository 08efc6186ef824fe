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

// Every activation of the registry (include/iabn/vocabulary.h) is identity for y >= 0 (one kink
// rule: -0.0 included) and differs only below 0. Each function below states the negative side
// of one activation in a switch; a listed activation without its case is a compile error.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"

// select(act == code(a0), branch(a0), act == code(a1), branch(a1), ..., branch(last)): one
// expression over every activation, which the pipelines' specializations reduce to one branch.
template <typename Branch>
Halide::Expr per_activation(const Halide::Expr& act, Branch branch) {
    using iabn::kActivationCount;
    using iabn::kActivations;
    Halide::Expr out = branch(kActivations[kActivationCount - 1]);
    for (int i = kActivationCount - 2; i >= 0; --i) {
        out = Halide::select(act == activation_code(kActivations[i]), branch(kActivations[i]), out);
    }
    return out;
}

// z = act(y).
inline Halide::Expr activate(const Halide::Expr& y, const Halide::Expr& act, const Halide::Expr& a) {
    using namespace Halide;
    Expr negative = per_activation(act, [&](iabn::Activation k) -> Expr {
        switch (k) {
            case iabn::Activation::identity: return y;
            case iabn::Activation::leaky_relu: return a * y;
            case iabn::Activation::elu: return a * expm1_accurate(y);
        }
        return Expr();
    });
    return select(y >= 0, y, negative);
}

// y = act^-1(z). ELU saturates: where z/a <= -1 in floating point the exact inverse is -inf, so the
// log1p argument is clamped to -1 + `step`, the spacing of the stored dtype's values just below 1
// (2^-53 f64, 2^-24 f32, 2^-11 f16, 2^-8 bf16): a saturated element gets the y of the nearest
// storable z above -a, ln(step) (-36.7, -16.6, -7.6, -5.5 for a = 1). Such elements get dy = 0
// from derivative_factor(), so their (finite) y reaches no sum, only their own dx.
inline Halide::Expr inverse_activation(const Halide::Expr& z, const Halide::Expr& act, const Halide::Expr& a,
                                       const Halide::Expr& step) {
    using namespace Halide;
    Type t = z.type();
    Expr z_over_a = z * (1 / a);  // a multiply, not a divide, per element: 1 / a is loop-invariant
    Expr negative = per_activation(act, [&](iabn::Activation k) -> Expr {
        switch (k) {
            case iabn::Activation::identity: return z;
            case iabn::Activation::leaky_relu: return z_over_a;
            case iabn::Activation::elu: {
                // Only saturated elements are clamped: an unsaturated z/a may lie closer to -1 than
                // `step` when a is not a power of two (f16 z = -0.0999755859375 with a = 0.1:
                // 1 + z/a = 2^-12).
                Expr u = select(z_over_a <= -1, cast(t, -1) + cast(t, step), z_over_a);
                return log1p_accurate(u);
            }
        }
        return Expr();
    });
    return select(z >= 0, z, negative);
}

// act'(y) written in terms of z = act(y), so dy = dz * derivative_factor(z).
inline Halide::Expr derivative_factor(const Halide::Expr& z, const Halide::Expr& act,
                                      const Halide::Expr& a) {
    using namespace Halide;
    Type t = z.type();
    Expr negative = per_activation(act, [&](iabn::Activation k) -> Expr {
        switch (k) {
            case iabn::Activation::identity: return cast(t, 1);
            case iabn::Activation::leaky_relu: return a;
            case iabn::Activation::elu: {
                // a * exp(y) = z + a, exactly 0 where saturated (the quotient inverse_activation()
                // clamps).
                Expr saturated = z * (1 / a) <= cast(t, -1);
                return select(saturated, cast(t, 0), z + a);
            }
        }
        return Expr();
    });
    return select(z >= 0, cast(t, 1), negative);
}

#pragma GCC diagnostic pop

// The specializations every pipeline makes on the runtime activation code: one per activation.
inline std::vector<Halide::Expr> activation_specializations(const Halide::Expr& act) {
    std::vector<Halide::Expr> out;
    for (iabn::Activation k : iabn::kActivations) out.push_back(act == activation_code(k));
    return out;
}

}  // namespace iabn_gen
