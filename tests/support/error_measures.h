// Norm-wise error measures and tolerances of the iabn tests, without GoogleTest: the test suite
// (through test_util.h) and the fuzzer (tests/fuzz) both use them.
#pragma once

#include <iabn/iabn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace iabn_test {

// ||a - b|| / ||b|| (2-norms). NaN anywhere in a or b gives NaN, which fails every EXPECT_LE.
// If b is exactly zero the absolute norm ||a - b|| is returned.
inline double rel_err(const std::vector<double>& a, const std::vector<double>& b,
                      const std::vector<char>* skip = nullptr) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    long double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (skip && (*skip)[i]) continue;
        const long double d = static_cast<long double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<long double>(b[i]) * b[i];
    }
    if (std::isnan(static_cast<double>(num))) return std::numeric_limits<double>::quiet_NaN();
    if (den == 0) return std::sqrt(static_cast<double>(num));
    return std::sqrt(static_cast<double>(num / den));
}

// ||a - b|| / max(||b||, floor * ||scale||). Used for results that are sums or differences: their
// attainable accuracy is relative to the magnitude of the operands (`scale`, e.g. sum |terms|).
// The test data are built so that ||b|| is a sizeable fraction of ||scale|| (correlated dz with a
// mean offset), so the floor only takes over for analytic cancellations, e.g. dx of a batch-stat
// channel with M = 2, which is ~epsilon-sized in exact arithmetic.
inline double rel_err_floor(const std::vector<double>& a, const std::vector<double>& b,
                            const std::vector<double>& scale, double floor,
                            const std::vector<char>* skip = nullptr) {
    if (a.size() != b.size() || a.size() != scale.size()) return std::numeric_limits<double>::infinity();
    long double num = 0, den = 0, sc = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (skip && (*skip)[i]) continue;
        const long double d = static_cast<long double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<long double>(b[i]) * b[i];
        sc += static_cast<long double>(scale[i]) * scale[i];
    }
    if (std::isnan(static_cast<double>(num))) return std::numeric_limits<double>::quiet_NaN();
    const double d = std::max(std::sqrt(static_cast<double>(den)), floor * std::sqrt(static_cast<double>(sc)));
    if (d == 0) return std::sqrt(static_cast<double>(num));
    return std::sqrt(static_cast<double>(num)) / d;
}

inline int64_t count_nonfinite(const std::vector<double>& v) {
    int64_t n = 0;
    for (double x : v) n += std::isfinite(x) ? 0 : 1;
    return n;
}

// Norm-wise tolerance for a result computed in dtype T against the float64 reference.
// f32: 80 * eps(f32) ~= 9.5e-6, i.e. the "1e-5 relative" budget: a handful of roundings per
//      element plus the error of f32-accumulated channel sums (a few thousand terms, summed in
//      blocks/lanes, lose ~sqrt(M) * eps at most in a norm-wise sense).
// f64: 4096 * eps(f64) ~= 9.1e-13, the "1e-12" budget: the same reasoning, with room for sums of
//      up to millions of terms and for the reference's own (naive, double) summation error.
template <typename T>
constexpr double tolerance() {
    return std::is_same<T, float>::value ? 80.0 * std::numeric_limits<float>::epsilon()
                                         : 4096.0 * std::numeric_limits<double>::epsilon();
}

// Tensor outputs of a call on `dtype` tensors. 16-bit tensors are computed in f32 and each
// element is rounded once to nearest when stored (unit roundoff u = 2^-11 for f16, 2^-8 for
// bf16), which adds at most u to the norm-wise relative error of the f32 budget.
inline double tolerance(iabn::DType dtype) {
    switch (dtype) {
        case iabn::DType::f64: return tolerance<double>();
        case iabn::DType::f16: return std::ldexp(1.0, -11) + tolerance<float>();
        case iabn::DType::bf16: return std::ldexp(1.0, -8) + tolerance<float>();
        default: return tolerance<float>();
    }
}

// Per-channel outputs of a call on `dtype` tensors (f64 buffers for f64 tensors, f32 otherwise):
// their sums are taken in f64 from the stored elements, so only the f32 (f64) budget applies.
inline double channel_tolerance(iabn::DType dtype) {
    return dtype == iabn::DType::f64 ? tolerance<double>() : tolerance<float>();
}

}  // namespace iabn_test
