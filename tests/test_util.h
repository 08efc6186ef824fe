// Small helpers shared by the iabn test suites: seeded random data, typed buffers that convert
// to/from double, NaN poisoning, byte snapshots and norm-wise error measures.
//
// Nothing here knows the math of the library; it only moves bytes and measures distances.
#pragma once

#include <iabn/iabn.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <string>
#include <vector>

namespace iabn_test {

// ---------------------------------------------------------------------------------------------
// Seeds. A fresh seed per process (std::random_device) so repeated runs explore new data; the
// environment variable IABN_TEST_SEED fixes it. Every test mixes the seed with its own full name,
// so `IABN_TEST_SEED=<seed> iabn_tests --gtest_filter=<test>` reproduces one failing test alone.

inline uint64_t process_seed() {
    static const uint64_t seed = [] {
        if (const char* env = std::getenv("IABN_TEST_SEED")) {
            if (*env) return static_cast<uint64_t>(std::strtoull(env, nullptr, 0));
        }
        std::random_device rd;
        return (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
    }();
    return seed;
}

inline std::string current_test_name() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (!info) return "";
    return std::string(info->test_suite_name()) + "." + info->name();
}

// FNV-1a: stable across compilers (std::hash is not), so a seed reproduces on any build.
inline uint64_t fnv1a(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : s) {
        h ^= ch;
        h *= 1099511628211ull;
    }
    return h;
}

inline std::string seed_note() {
    std::ostringstream out;
    out << "reproduce with IABN_TEST_SEED=" << process_seed() << " --gtest_filter=" << current_test_name();
    return out.str();
}

// Put at the top of every test that draws random data: the seed is printed with any failure.
#define IABN_TRACE_SEED() SCOPED_TRACE(::iabn_test::seed_note())

class Rng {
public:
    Rng() : engine_(process_seed() ^ fnv1a(current_test_name())) {}
    explicit Rng(uint64_t seed) : engine_(seed) {}

    double normal() { return std::normal_distribution<double>(0.0, 1.0)(engine_); }
    double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
    double sign() { return std::bernoulli_distribution(0.5)(engine_) ? 1.0 : -1.0; }
    // A magnitude in [lo, hi] with a random sign.
    double signed_uniform(double lo, double hi) { return sign() * uniform(lo, hi); }
    std::mt19937_64& engine() { return engine_; }

private:
    std::mt19937_64 engine_;
};

// ---------------------------------------------------------------------------------------------
// Typed buffers.

inline int64_t numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

inline size_t elem_size(iabn::DType t) {
    switch (t) {
        case iabn::DType::f64: return 8;
        case iabn::DType::f32: return 4;
        default: return 2;
    }
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < shape.size(); i++) out << (i ? "," : "") << shape[i];
    out << "]";
    return out.str();
}

using Bytes = std::vector<unsigned char>;

// Dense host memory of f32 or f64, 8-byte aligned, with conversions to and from double.
class Buffer {
public:
    Buffer() = default;
    Buffer(iabn::DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
        if (dtype_ != iabn::DType::f32 && dtype_ != iabn::DType::f64) {
            throw std::logic_error("test Buffer supports f32 and f64 only");
        }
        n_ = numel(shape_);
        storage_.assign(static_cast<size_t>((bytes() + 7) / 8 + 1), 0);
    }

    iabn::DType dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t size() const { return n_; }
    size_t bytes() const { return static_cast<size_t>(n_) * elem_size(dtype_); }
    void* data() { return storage_.data(); }
    const void* data() const { return storage_.data(); }
    unsigned char* raw() { return reinterpret_cast<unsigned char*>(storage_.data()); }
    const unsigned char* raw() const { return reinterpret_cast<const unsigned char*>(storage_.data()); }

    // The buffer as a host tensor; while a DeviceMirror (cuda_device.h) is active, as a device
    // tensor holding a copy of it.
    iabn::TensorRef ref();
    // This buffer's dtype and shape over other memory (the mirror's device copy).
    iabn::TensorRef ref_on(iabn::Device device, void* memory) const {
        iabn::TensorRef t;
        t.data = memory;
        t.dtype = dtype_;
        t.shape = shape_;
        t.device = device;
        return t;
    }

    double get(int64_t i) const {
        if (dtype_ == iabn::DType::f64) return reinterpret_cast<const double*>(raw())[i];
        return static_cast<double>(reinterpret_cast<const float*>(raw())[i]);
    }
    void put(int64_t i, double v) {
        if (dtype_ == iabn::DType::f64) {
            reinterpret_cast<double*>(raw())[i] = v;
        } else {
            reinterpret_cast<float*>(raw())[i] = static_cast<float>(v);
        }
    }
    std::vector<double> get() const {
        std::vector<double> out(static_cast<size_t>(n_));
        for (int64_t i = 0; i < n_; i++) out[static_cast<size_t>(i)] = get(i);
        return out;
    }
    // Stores the values (rounded to the dtype); returns them as stored, so a reference fed with
    // the return value sees exactly what the library reads.
    std::vector<double> set(const std::vector<double>& v) {
        if (static_cast<int64_t>(v.size()) != n_) throw std::logic_error("Buffer::set: size mismatch");
        for (int64_t i = 0; i < n_; i++) put(i, v[static_cast<size_t>(i)]);
        return get();
    }
    // NaN everywhere: an output element the library forgets to write stays NaN and fails.
    void poison() {
        for (int64_t i = 0; i < n_; i++) put(i, std::numeric_limits<double>::quiet_NaN());
    }
    Bytes snapshot() const { return Bytes(raw(), raw() + bytes()); }
    bool same_bytes(const Bytes& snap) const {
        return snap.size() == bytes() && std::memcmp(snap.data(), raw(), bytes()) == 0;
    }

private:
    iabn::DType dtype_ = iabn::DType::f32;
    std::vector<int64_t> shape_;
    int64_t n_ = 0;
    std::vector<uint64_t> storage_;
};

// ---------------------------------------------------------------------------------------------
// Error measures.

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

inline bool all_finite(const std::vector<double>& v) {
    for (double x : v) {
        if (!std::isfinite(x)) return false;
    }
    return true;
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

inline double tolerance(iabn::DType dtype) {
    return dtype == iabn::DType::f64 ? tolerance<double>() : tolerance<float>();
}

// Per-channel buffers are f64 for f64 tensors and f32 otherwise (docs/DESIGN.md, "Dtypes").
inline iabn::DType channel_dtype(iabn::DType tensor) {
    return tensor == iabn::DType::f64 ? iabn::DType::f64 : iabn::DType::f32;
}

}  // namespace iabn_test
