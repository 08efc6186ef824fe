// The tensors' values of the GPU benchmark and the GPU tuner: a pool of normal samples, converted
// once per dtype, from which element i takes the entry at a hash of i. (A normal draw per element,
// and a 16-bit conversion per element, took seconds for the largest shapes; a tensor's statistics
// need varied values, not independent ones.)
#pragma once

#include "half.h"  // tests/support/half.h: iabn_test::to_bits, the 16-bit values

#include <iabn/iabn.h>

#include <cstdint>
#include <random>
#include <vector>

namespace bench {

class ValuePool {
public:
    ValuePool(float mean, float stddev, unsigned seed) : f32_(size_t{1} << 18) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal(mean, stddev);
        for (float& v : f32_) v = normal(rng);
        for (float v : f32_) {
            f64_.push_back(v);
            f16_.push_back(iabn_test::to_bits(iabn_test::kF16, v));
            bf16_.push_back(iabn_test::to_bits(iabn_test::kBF16, v));
        }
    }

    // n elements of `dtype`, as the tensor's bytes.
    std::vector<unsigned char> values(iabn::DType dtype, int64_t n) const {
        std::vector<unsigned char> out(static_cast<size_t>(n) * iabn::dtype_size(dtype));
        switch (dtype) {
            case iabn::DType::f32: fill(f32_, out.data(), n); break;
            case iabn::DType::f64: fill(f64_, out.data(), n); break;
            case iabn::DType::f16: fill(f16_, out.data(), n); break;
            case iabn::DType::bf16: fill(bf16_, out.data(), n); break;
        }
        return out;
    }

private:
    template <typename T>
    static void fill(const std::vector<T>& pool, unsigned char* out, int64_t n) {
        T* p = reinterpret_cast<T*>(out);
        for (int64_t i = 0; i < n; i++) p[i] = pool[mix(static_cast<uint64_t>(i)) & (pool.size() - 1)];
    }
    static uint64_t mix(uint64_t z) {  // splitmix64's finalizer
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    std::vector<float> f32_;
    std::vector<double> f64_;
    std::vector<uint16_t> f16_, bf16_;
};

}  // namespace bench
