// Timing helpers of iabn-bench: a steady clock, medians, and the cache flush between runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include <unistd.h>

namespace bench {

inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Evicts the tensors from the caches between timed runs by rewriting a buffer twice the size of the
// last-level cache (at least 64 MB). A fixed 64 MB was enough on a 32 MB L3; on a 260 MB L3 it left
// part of a 100 MB tensor cached, and a pass's time then depended on what ran before it (the same
// floor loop over the same bytes: 4.3 ms in one place, 3.1 ms in another).
struct CacheFlush {
    std::vector<float> junk = std::vector<float>(bytes() / sizeof(float), 1.0f);
    void operator()() {
        float* p = junk.data();
        const size_t n = junk.size();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) p[i] += 1.0f;
    }
    static size_t bytes() {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);  // 0 or -1 where the C library cannot tell
        return std::max(size_t{64} << 20, l3 > 0 ? 2 * static_cast<size_t>(l3) : 0);
    }
};

}  // namespace bench
