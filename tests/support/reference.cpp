// Naive float64 reference of docs/semantics.md. See reference.h.
#include "reference.h"

#include <cmath>
#include <stdexcept>

namespace ref {

int channel_dim(size_t rank, iabn::Layout layout) {
    return layout == iabn::Layout::nchw ? 1 : static_cast<int>(rank) - 1;
}

int64_t num_channels(const std::vector<int64_t>& shape, iabn::Layout layout) {
    return shape.at(static_cast<size_t>(channel_dim(shape.size(), layout)));
}

int64_t per_channel(const std::vector<int64_t>& shape, iabn::Layout layout) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n / num_channels(shape, layout);
}

int64_t channel_of(int64_t i, const std::vector<int64_t>& shape, iabn::Layout layout) {
    // Unravel i into a multi-index (last dim fastest) and return the channel coordinate.
    const int cd = channel_dim(shape.size(), layout);
    int64_t rest = i;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; d--) {
        const int64_t coord = rest % shape[static_cast<size_t>(d)];
        rest /= shape[static_cast<size_t>(d)];
        if (d == cd) return coord;
    }
    throw std::logic_error("channel_of: bad shape");
}

double activate(double y, iabn::Activation act, double a) {
    switch (act) {
        case iabn::Activation::identity: return y;
        case iabn::Activation::leaky_relu: return y >= 0 ? y : a * y;  // -0.0 >= 0: identity
        case iabn::Activation::elu: return y >= 0 ? y : a * std::expm1(y);
    }
    throw std::logic_error("activate: bad activation");
}

double effective_scale(const std::vector<double>& weight, int64_t c, const iabn::Options& o) {
    if (weight.empty()) return 1.0;  // missing weight: g = 1 (docs/semantics.md, "Effective scale")
    const double w = weight[static_cast<size_t>(c)];
    return o.abs_weight ? std::fabs(w) + o.epsilon : w;
}

static double bias_of(const std::vector<double>& bias, int64_t c) {
    return bias.empty() ? 0.0 : bias[static_cast<size_t>(c)];
}

ForwardResult forward(const std::vector<double>& x, const std::vector<int64_t>& shape,
                      const std::vector<double>& weight, const std::vector<double>& bias,
                      const std::vector<double>& running_mean, const std::vector<double>& running_var,
                      const iabn::Options& o) {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t C = num_channels(shape, o.layout);
    const int64_t M = n / C;
    ForwardResult r;
    r.mean.assign(static_cast<size_t>(C), 0.0);
    r.invstd.assign(static_cast<size_t>(C), 0.0);
    std::vector<double> var(static_cast<size_t>(C), 0.0);
    std::vector<int64_t> chan(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) chan[static_cast<size_t>(i)] = channel_of(i, shape, o.layout);

    if (uses_batch_stats(o)) {
        // Two passes in (long) double: the mean, then the biased variance around it.
        std::vector<long double> sum(static_cast<size_t>(C), 0.0L), sq(static_cast<size_t>(C), 0.0L);
        for (int64_t i = 0; i < n; i++) sum[static_cast<size_t>(chan[static_cast<size_t>(i)])] += x[static_cast<size_t>(i)];
        for (int64_t c = 0; c < C; c++) r.mean[static_cast<size_t>(c)] = static_cast<double>(sum[static_cast<size_t>(c)] / M);
        for (int64_t i = 0; i < n; i++) {
            const size_t c = static_cast<size_t>(chan[static_cast<size_t>(i)]);
            const long double d = static_cast<long double>(x[static_cast<size_t>(i)]) - r.mean[c];
            sq[c] += d * d;
        }
        for (int64_t c = 0; c < C; c++) var[static_cast<size_t>(c)] = static_cast<double>(sq[static_cast<size_t>(c)] / M);
    } else {
        r.mean = running_mean;
        var = running_var;
    }
    for (int64_t c = 0; c < C; c++) {
        r.invstd[static_cast<size_t>(c)] = 1.0 / std::sqrt(var[static_cast<size_t>(c)] + o.epsilon);
    }

    r.y.resize(static_cast<size_t>(n));
    r.z.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = chan[static_cast<size_t>(i)];
        const double g = effective_scale(weight, c, o);
        const double y = g * (x[static_cast<size_t>(i)] - r.mean[static_cast<size_t>(c)]) * r.invstd[static_cast<size_t>(c)] +
                         bias_of(bias, c);
        r.y[static_cast<size_t>(i)] = y;
        r.z[static_cast<size_t>(i)] = activate(y, o.activation, o.activation_param);
    }

    r.running_mean = running_mean;
    r.running_var = running_var;
    if (uses_batch_stats(o)) {
        r.saved_mean = r.mean;
        r.saved_invstd = r.invstd;
        for (int64_t c = 0; c < C; c++) {
            const size_t k = static_cast<size_t>(c);
            const double v = o.unbiased_running_var ? var[k] * static_cast<double>(M) / static_cast<double>(M - 1) : var[k];
            r.running_mean[k] = o.momentum * running_mean[k] + (1.0 - o.momentum) * r.mean[k];
            r.running_var[k] = o.momentum * running_var[k] + (1.0 - o.momentum) * v;
        }
    }
    return r;
}

BackwardResult backward(const std::vector<double>& z, const std::vector<double>& dz,
                        const std::vector<int64_t>& shape, const std::vector<double>& weight,
                        const std::vector<double>& bias, const std::vector<double>& saved_invstd,
                        const std::vector<double>& running_var, const iabn::Options& o) {
    const int64_t n = static_cast<int64_t>(z.size());
    const int64_t C = num_channels(shape, o.layout);
    const int64_t M = n / C;
    const bool batch = uses_batch_stats(o);
    const double a = o.activation_param;

    BackwardResult r;
    r.dx.assign(static_cast<size_t>(n), 0.0);
    r.dx_scale.assign(static_cast<size_t>(n), 0.0);
    r.saturated.assign(static_cast<size_t>(n), 0);
    std::vector<double> dy(static_cast<size_t>(n), 0.0), xhat(static_cast<size_t>(n), 0.0);
    std::vector<int64_t> chan(static_cast<size_t>(n));
    std::vector<long double> sum_dy(static_cast<size_t>(C), 0.0L), sum_dy_xhat(static_cast<size_t>(C), 0.0L);
    std::vector<long double> abs_dy(static_cast<size_t>(C), 0.0L), abs_dy_xhat(static_cast<size_t>(C), 0.0L);

    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(i);
        const int64_t c = channel_of(i, shape, o.layout);
        chan[k] = c;
        const double zi = z[k];
        const double dzi = dz[k];
        double y = zi, d = dzi;
        switch (o.activation) {
            case iabn::Activation::identity: break;
            case iabn::Activation::leaky_relu:
                if (!(zi >= 0)) {
                    y = zi / a;
                    d = a * dzi;
                }
                break;
            case iabn::Activation::elu:
                if (!(zi >= 0)) {
                    if (zi / a <= -1.0) {
                        // Saturated: the inverse is -inf and act'(y) = 0. dy = 0 exactly; the
                        // element contributes nothing to the sums (and -inf * 0 is avoided).
                        r.saturated[k] = 1;
                        r.num_saturated++;
                        dy[k] = 0.0;
                        xhat[k] = 0.0;
                        continue;
                    }
                    y = std::log1p(zi / a);
                    d = dzi * (zi + a);
                }
                break;
        }
        const double g = effective_scale(weight, c, o);
        dy[k] = d;
        xhat[k] = (y - bias_of(bias, c)) / g;
        sum_dy[static_cast<size_t>(c)] += d;
        sum_dy_xhat[static_cast<size_t>(c)] += static_cast<long double>(d) * xhat[k];
        abs_dy[static_cast<size_t>(c)] += std::fabs(d);
        abs_dy_xhat[static_cast<size_t>(c)] += std::fabs(static_cast<long double>(d) * xhat[k]);
    }

    r.weight_grad.resize(static_cast<size_t>(C));
    r.bias_grad.resize(static_cast<size_t>(C));
    r.weight_grad_scale.resize(static_cast<size_t>(C));
    r.bias_grad_scale.resize(static_cast<size_t>(C));
    std::vector<double> invstd(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; c++) {
        const size_t k = static_cast<size_t>(c);
        invstd[k] = batch ? saved_invstd[k] : 1.0 / std::sqrt(running_var[k] + o.epsilon);
        // abs_weight: d|w|/dw = sign(w), so the gradient flips where the weight is negative.
        const double sign = (o.abs_weight && !weight.empty() && weight[k] < 0) ? -1.0 : 1.0;
        r.weight_grad[k] = sign * static_cast<double>(sum_dy_xhat[k]);
        r.bias_grad[k] = static_cast<double>(sum_dy[k]);
        r.weight_grad_scale[k] = static_cast<double>(abs_dy_xhat[k]);
        r.bias_grad_scale[k] = static_cast<double>(abs_dy[k]);
    }

    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(i);
        const size_t c = static_cast<size_t>(chan[k]);
        const double gi = effective_scale(weight, chan[k], o) * invstd[c];
        if (batch) {
            if (r.saturated[k]) continue;  // undefined in exact arithmetic (xhat = -inf)
            const double mdy = static_cast<double>(sum_dy[c]) / static_cast<double>(M);
            const double mdx = static_cast<double>(sum_dy_xhat[c]) / static_cast<double>(M);
            r.dx[k] = gi * (dy[k] - mdy - xhat[k] * mdx);
            r.dx_scale[k] = std::fabs(gi) * (std::fabs(dy[k]) + std::fabs(mdy) + std::fabs(xhat[k] * mdx));
        } else {
            r.dx[k] = gi * dy[k];  // saturated: dy = 0, so dx = 0 exactly
            r.dx_scale[k] = std::fabs(r.dx[k]);
        }
    }
    return r;
}

}  // namespace ref
