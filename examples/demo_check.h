// The demo's comparison with the float64 reference of tests/support/reference.h (the same naive
// reference the test suite uses; it shares no code with the library).
#pragma once

#include "reference.h"

#include <iabn/iabn.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace demo {

// The demo passes when every output is this close (norm-wise) to float64. f32 must be within
// 1e-5 of float64 (the project's accuracy contract), f64 within ~4500 ulps (1e-12). That is the
// budget of the per-channel outputs (statistics, parameter gradients), which are f64 for f64
// tensors and f32 otherwise, 16-bit tensors included.
inline double channel_tolerance(iabn::DType dtype) { return dtype == iabn::DType::f64 ? 1e-12 : 1e-5; }

// The unit roundoff of a 16-bit storage (half the spacing of its values in [1, 2)): 2^-11 for f16
// (10 fraction bits), 2^-8 for bf16 (7); 0 for f32 and f64, whose budgets above include it.
inline double storage_roundoff(iabn::DType dtype) {
    switch (dtype) {
        case iabn::DType::f16: return std::ldexp(1.0, -11);
        case iabn::DType::bf16: return std::ldexp(1.0, -8);
        default: return 0;
    }
}

// The tensor outputs (z, dx): 16-bit tensors are computed in f32 and each element is rounded once
// when stored, which adds at most u to the norm-wise error of the f32 computation.
inline double tolerance(iabn::DType dtype) { return channel_tolerance(dtype) + storage_roundoff(dtype); }

struct Error {
    std::string name;
    double normwise, max_relative;
    double tolerance;  // the norm-wise error allowed
};

struct Errors {
    std::vector<Error> items;
    double worst() const {
        double w = 0;
        for (const Error& e : items) w = std::max(w, e.normwise);
        return w;
    }
    // Every output within its tolerance (a NaN error is not).
    bool within() const {
        return std::all_of(items.begin(), items.end(), [](const Error& e) { return e.normwise <= e.tolerance; });
    }
};

// ||got - want|| / ||want|| and max |got - want| / max |want|, over the elements not skipped.
inline Error compare(const std::string& name, const std::vector<double>& got, const std::vector<double>& want,
                     double tolerance, const std::vector<char>& skip = {}) {
    double diff2 = 0, want2 = 0, max_diff = 0, max_want = 0;
    for (size_t i = 0; i < want.size(); i++) {
        if (!skip.empty() && skip[i]) continue;
        const double d = got[i] - want[i];
        diff2 += d * d;
        want2 += want[i] * want[i];
        max_diff = std::max(max_diff, std::abs(d));
        max_want = std::max(max_want, std::abs(want[i]));
    }
    const double norm = want2 > 0 ? std::sqrt(diff2 / want2) : std::sqrt(diff2);
    return {name, norm, max_want > 0 ? max_diff / max_want : max_diff, tolerance};
}

// The layer ran one forward (from running mean 0, running var 1) and one backward; x0 and dz0
// are the inputs, z and dx what the kernels wrote over them.
inline Errors compare_with_reference(const std::vector<int64_t>& shape, const iabn::Options& opt,
                                     const std::vector<double>& x0, const std::vector<double>& dz0,
                                     const std::vector<double>& weight, const std::vector<double>& bias,
                                     const std::vector<double>& z, const std::vector<double>& dx,
                                     const iabn::InPlaceABN& layer, const std::vector<double>& running_mean,
                                     const std::vector<double>& running_var) {
    const int64_t channels = ref::num_channels(shape, opt.layout);
    const ref::ForwardResult f = ref::forward(x0, shape, weight, bias, std::vector<double>(channels, 0.0),
                                              std::vector<double>(channels, 1.0), opt);
    // The backward is checked on the same stored inputs the kernel saw: its own z and saved invstd.
    const ref::BackwardResult b =
        ref::backward(z, dz0, shape, weight, bias, layer.saved_invstd(), running_var, opt);
    const double tensor = tolerance(layer.dtype()), channel = channel_tolerance(layer.dtype());
    Errors e;
    e.items.push_back(compare("z", z, f.z, tensor));
    e.items.push_back(compare("saved_mean", layer.saved_mean(), f.saved_mean, channel));
    e.items.push_back(compare("saved_invstd", layer.saved_invstd(), f.saved_invstd, channel));
    e.items.push_back(compare("running_mean", running_mean, f.running_mean, channel));
    e.items.push_back(compare("running_var", running_var, f.running_var, channel));
    e.items.push_back(compare("dx", dx, b.dx, tensor, b.saturated));
    e.items.push_back(compare("weight_grad", layer.weight_grad(), b.weight_grad, channel));
    e.items.push_back(compare("bias_grad", layer.bias_grad(), b.bias_grad, channel));
    return e;
}

}  // namespace demo
