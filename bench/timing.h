// Timing helpers of iabn-bench: a steady clock, medians, and the cache flush between runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace bench {

inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Evicts the tensors from the caches between timed runs: writes 64 MB, twice the largest L3 here.
struct CacheFlush {
    std::vector<float> junk = std::vector<float>(size_t{64} << 20 >> 2, 1.0f);
    void operator()() {
        float* p = junk.data();
        const size_t n = junk.size();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) p[i] += 1.0f;
    }
};

}  // namespace bench
