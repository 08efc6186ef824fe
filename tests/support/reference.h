// A deliberately naive float64 reference of the iabn math contract (docs/semantics.md).
//
// Plain loops over the flat (logical) index; the channel of an element is found by unravelling
// the index into a multi-index. No blocking, no vectorization, two-pass statistics in double.
// It shares no code with the library: only the public enums/Options of iabn/iabn.h are used to
// describe what to compute.
#pragma once

#include <iabn/iabn.h>

#include <cstdint>
#include <vector>

namespace ref {

// Which dimension holds the channels: 1 for nchw, the last one for nhwc.
int channel_dim(size_t rank, iabn::Layout layout);
int64_t num_channels(const std::vector<int64_t>& shape, iabn::Layout layout);
int64_t per_channel(const std::vector<int64_t>& shape, iabn::Layout layout);  // M
// Channel of flat element i (row-major, last dim fastest).
int64_t channel_of(int64_t i, const std::vector<int64_t>& shape, iabn::Layout layout);

// act(y) and, for the backward, the inverse and derivative from the stored output z.
double activate(double y, iabn::Activation act, double a);

// g for one channel: weight (plain), |weight| + eps (abs_weight); 1 when weight is missing.
double effective_scale(const std::vector<double>& weight, int64_t c, const iabn::Options& o);

// Per-channel vectors: an empty `weight` / `bias` means "not given" (g = 1, b = 0).
struct ForwardResult {
    std::vector<double> y;  // pre-activation
    std::vector<double> z;
    std::vector<double> saved_mean, saved_invstd;     // batch statistics only (empty otherwise)
    std::vector<double> running_mean, running_var;    // updated (batch) or copied (global)
    std::vector<double> mean, invstd;                 // the statistics actually used
};

ForwardResult forward(const std::vector<double>& x, const std::vector<int64_t>& shape,
                      const std::vector<double>& weight, const std::vector<double>& bias,
                      const std::vector<double>& running_mean, const std::vector<double>& running_var,
                      const iabn::Options& o);

struct BackwardResult {
    std::vector<double> dx;
    std::vector<double> weight_grad, bias_grad;
    // Magnitudes of the operands of each result (for error floors, see test_util.h):
    // dx_scale = |g*invstd| * (|dy| + |sum_dy/M| + |xhat*sum_dy_xhat/M|), grad scales = sum of |terms|.
    std::vector<double> dx_scale, weight_grad_scale, bias_grad_scale;
    // ELU elements with z/a <= -1: dy = 0, excluded from the sums. With batch statistics their dx
    // is undefined here (xhat = -inf) and set to 0; tests compare only unsaturated elements.
    std::vector<char> saturated;
    int64_t num_saturated = 0;
};

// z, dz as stored; saved_invstd is read with batch statistics, running_var with global ones.
BackwardResult backward(const std::vector<double>& z, const std::vector<double>& dz,
                        const std::vector<int64_t>& shape, const std::vector<double>& weight,
                        const std::vector<double>& bias, const std::vector<double>& saved_invstd,
                        const std::vector<double>& running_var, const iabn::Options& o);

inline bool uses_batch_stats(const iabn::Options& o) { return o.training && !o.use_global_stats; }

}  // namespace ref
