// Small helpers shared by the iabn test suites: seeded random data, typed buffers that convert
// to/from double, NaN poisoning, byte snapshots; the norm-wise error measures are in
// error_measures.h (without GoogleTest, for the fuzzer too).
//
// Nothing here knows the math of the library; it only moves bytes and measures distances.
#pragma once

#include "error_measures.h"
#include "half.h"

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

using Bytes = std::vector<unsigned char>;

// The test's format of a 16-bit dtype (half.h).
inline HalfFormat half_format(iabn::DType t) { return t == iabn::DType::f16 ? kF16 : kBF16; }

// Dense host memory of any dtype, 8-byte aligned, with conversions to and from double (16-bit
// dtypes through half.h: rounding to nearest even).
class Buffer {
public:
    Buffer() = default;
    Buffer(iabn::DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
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
        switch (dtype_) {
            case iabn::DType::f64: return reinterpret_cast<const double*>(raw())[i];
            case iabn::DType::f32: return static_cast<double>(reinterpret_cast<const float*>(raw())[i]);
            default: return from_bits(half_format(dtype_), bits(i));
        }
    }
    void put(int64_t i, double v) {
        switch (dtype_) {
            case iabn::DType::f64: reinterpret_cast<double*>(raw())[i] = v; break;
            case iabn::DType::f32: reinterpret_cast<float*>(raw())[i] = static_cast<float>(v); break;
            default: set_bits(i, to_bits(half_format(dtype_), v));
        }
    }
    // The stored pattern of a 16-bit element.
    uint16_t bits(int64_t i) const {
        uint16_t h;
        std::memcpy(&h, raw() + 2 * i, 2);
        return h;
    }
    void set_bits(int64_t i, uint16_t h) { std::memcpy(raw() + 2 * i, &h, 2); }
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

// An activation_param for each activation (iabn::kActivations): a typical slope, 0.01, for
// leaky_relu; 1 for the others (identity ignores it).
inline double typical_param(iabn::Activation act) { return act == iabn::Activation::leaky_relu ? 0.01 : 1.0; }

// Per-channel buffers are f64 for f64 tensors and f32 otherwise (docs/semantics.md, "Dtypes").
inline iabn::DType channel_dtype(iabn::DType tensor) {
    return tensor == iabn::DType::f64 ? iabn::DType::f64 : iabn::DType::f32;
}

}  // namespace iabn_test
