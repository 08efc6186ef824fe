// Timing helpers of the benchmarks: a steady clock, medians, the cache flush between runs, and
// OpenMP threads that do not spin between them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "machine.h"

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

// Evicts the tensors from the caches between timed runs (machine.h says how much it rewrites).
// OpenMP's idle threads spin after each parallel region by default (the floor, the cache flush
// and oneDNN run on OpenMP): on a 2-core machine they would take the cores from iabn's threads in
// the run that follows (measured: 1.4x -> 2.1x on the nchw forward). libgomp reads
// OMP_WAIT_POLICY once, at load time, so a benchmark sets it and starts again, first thing in main.
inline void keep_openmp_threads_passive(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    std::perror("re-exec with OMP_WAIT_POLICY=passive");
    std::exit(1);
}

struct CacheFlush {
    explicit CacheFlush(size_t size = bytes()) : junk(size / sizeof(float), 1.0f) {}
    std::vector<float> junk;
    void operator()() {
        float* p = junk.data();
        const size_t n = junk.size();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) p[i] += 1.0f;
    }
    static size_t bytes() { return cache_flush_bytes(); }
};

}  // namespace bench
