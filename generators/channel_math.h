// Per-channel algebra shared by the forward and backward pipelines: effective scale, inverse
// standard deviation and the coefficients that the element-wise kernels consume.
#pragma once

#include "Halide.h"

namespace iabn_gen {

// g = weight (Paddle) or |weight| + epsilon (abs_weight, mapillary convention).
inline Halide::Expr effective_scale(const Halide::Expr& weight, const Halide::Expr& abs_weight,
                                    const Halide::Expr& epsilon) {
    return Halide::select(abs_weight, Halide::abs(weight) + epsilon, weight);
}

inline Halide::Expr inverse_std(const Halide::Expr& var, const Halide::Expr& epsilon) {
    return 1 / Halide::sqrt(var + epsilon);
}

// The invstd the forward normalized with: saved (batch statistics) or from the running variance.
inline Halide::Expr normalizing_invstd(const Halide::Expr& batch_stats, const Halide::Expr& saved_invstd,
                                       const Halide::Expr& running_var, const Halide::Expr& epsilon) {
    return Halide::select(batch_stats, saved_invstd, inverse_std(running_var, epsilon));
}

// Forward apply computes y = (x - pivot) * scale + shift. The pivot is the mean rounded to the
// compute type and the shift carries the rounding residual (mean - pivot) in the wide type, so
// x - pivot is exact when |mean| >> std and the result keeps full precision (a plain
// x * scale + shift would cancel ~|mean|/std digits).
struct ApplyCoefficients {
    Halide::Expr pivot, scale, shift;
};

inline ApplyCoefficients apply_coefficients(const Halide::Expr& mean, const Halide::Expr& invstd,
                                            const Halide::Expr& g, const Halide::Expr& b,
                                            Halide::Type compute) {
    using namespace Halide;
    Expr pivot = cast(compute, mean);
    Expr scale = g * invstd;
    Expr shift = b - (mean - cast(mean.type(), pivot)) * scale;
    return {pivot, cast(compute, scale), cast(compute, shift)};
}

// Backward apply computes dx = scale * (dy - mean_dy - xhat * mean_dy_xhat) with
// xhat = (y - bias) * inv_g; global statistics have mean_dy = mean_dy_xhat = 0.
struct GradCoefficients {
    Halide::Expr scale, mean_dy, mean_dy_xhat;
};

// Per-channel coefficients of the backward apply; with global statistics the gradient does not
// flow through the mean and variance, so only the scale term remains.
inline GradCoefficients grad_coefficients(const Halide::Expr& g, const Halide::Expr& invstd,
                                          const Halide::Expr& sum_dy, const Halide::Expr& sum_dy_xhat,
                                          const Halide::Expr& m, const Halide::Expr& batch_stats,
                                          Halide::Type compute) {
    using namespace Halide;
    Expr zero = cast(sum_dy.type(), 0);
    return {cast(compute, g * invstd), cast(compute, select(batch_stats, sum_dy / m, zero)),
            cast(compute, select(batch_stats, sum_dy_xhat / m, zero))};
}

}  // namespace iabn_gen
