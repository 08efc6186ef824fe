// iabn-bench-one-pass: what the one-pass nchw structure itself costs on this machine, apart from
// iabn. Plain C++ loops (OpenMP, AVX-512 where the CPU has it, else the build's ISA) over one
// tensor, timed against the floor loops of floor.cpp:
//   forward:  per block of channels, sums of (x - pivot) and its square, then x rewritten in place
//             (normalize + leaky_relu) while the block is in cache: iabn's forward_fused;
//   backward: per block, sums of dy and dy * xhat from z and dz, then dz rewritten as dx:
//             backward_fused;
// each with f64 accumulators (as iabn sums) and with f32 ones, and with the read of block k + 1
// interleaved with the rewrite of block k ("pipelined"), so that memory sees a read+write stream
// throughout. BENCHMARKS.md uses it to tell the structure's cost from iabn's schedules'.
//
//   iabn-bench-one-pass [--shape 32x256x56x56] [--repeats 11] [--threads 2]
#include "floor.h"
#include "timing.h"

#include <omp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

#if defined(__x86_64__)
#define WIDE __attribute__((target("avx512f,avx512vl,fma,prefer-vector-width=512")))
#else
#define WIDE
#endif

// The forward's sums of one element, in A: (x - pivot) and its square.
template <typename A>
WIDE inline void add_forward_terms(float x, A& s, A& q) {
    const A v = A(x) - A(0.5);
    s += v;
    q += v * v;
}

// The forward's sums of one block of `b` elements, in A.
template <typename A>
WIDE inline void forward_sums(const float* p, size_t b, A& s, A& q) {
    A s1 = 0, q1 = 0;
#pragma omp simd reduction(+ : s1, q1)
    for (size_t i = 0; i < b; i++) add_forward_terms(p[i], s1, q1);
    s = s1;
    q = q1;
}

WIDE inline float leaky(float y) { return y > 0 ? y : 0.01f * y; }

// What the backward recovers from z and dz (leaky_relu(0.01), bias 0.5, g 1).
struct Recovered {
    float dy, xhat;
};
WIDE inline Recovered recover(float z, float dz) {
    return {z > 0 ? dz : 0.01f * dz, (z > 0 ? z : 100.0f * z) - 0.5f};
}

// Each thread takes a run of blocks; per block: its sums, then its rewrite. Pipelined: the sums
// of block k + 1 are taken in the loop that rewrites block k.
template <typename A>
WIDE void forward_one_pass(float* x, size_t n, size_t b, bool pipelined) {
    const size_t blocks = n / b;
#pragma omp parallel
    {
        const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t first = blocks * t / nt, last = blocks * (t + 1) / nt;
        A s = 0, q = 0;
        if (pipelined && first < last) forward_sums(x + first * b, b, s, q);
        for (size_t k = first; k < last; k++) {
            float* p = x + k * b;
            if (!pipelined) forward_sums(p, b, s, q);
            const float m = float(s / A(b)), inv = float(1 / (q / A(b) + A(1)));
            if (pipelined && k + 1 < last) {
                const float* next = p + b;
                A s2 = 0, q2 = 0;
#pragma omp simd reduction(+ : s2, q2)
                for (size_t i = 0; i < b; i++) {
                    add_forward_terms(next[i], s2, q2);
                    p[i] = leaky((p[i] - m) * inv);
                }
                s = s2;
                q = q2;
            } else {
#pragma omp simd
                for (size_t i = 0; i < b; i++) p[i] = leaky((p[i] - m) * inv);
            }
        }
    }
}

// Per block: sums of dy and dy * xhat recovered from z and dz, then dz rewritten as dx.
template <typename A>
WIDE void backward_one_pass(float* dz, const float* z, size_t n, size_t b) {
    const size_t blocks = n / b;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < blocks; k++) {
        float* d = dz + k * b;
        const float* y = z + k * b;
        A s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
        for (size_t i = 0; i < b; i++) {
            const Recovered e = recover(y[i], d[i]);
            s += A(e.dy);
            q += A(e.dy * e.xhat);
        }
        const float ms = float(s / A(b)), mq = float(q / A(b));
#pragma omp simd
        for (size_t i = 0; i < b; i++) {
            const Recovered e = recover(y[i], d[i]);
            d[i] = 0.9f * (e.dy - ms - e.xhat * mq);
        }
    }
}

bool wide() {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

std::vector<int64_t> parse_shape(const std::string& text) {
    std::vector<int64_t> dims;
    size_t at = 0;
    while (at <= text.size()) {
        const size_t x = text.find('x', at);
        dims.push_back(std::stoll(text.substr(at, x - at)));
        if (x == std::string::npos) break;
        at = x + 1;
    }
    if (dims.size() != 4) throw std::runtime_error("--shape takes NxCxHxW, not '" + text + "'");
    return dims;
}

}  // namespace

int main(int argc, char** argv) try {
    bench::keep_openmp_threads_passive(argv);
    std::vector<int64_t> shape = {32, 256, 56, 56};
    int repeats = 11, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--shape") shape = parse_shape(v);
        else if (a == "--repeats") repeats = std::stoi(v);
        else if (a == "--threads") threads = std::stoi(v);
        else throw std::runtime_error("usage: iabn-bench-one-pass [--shape NxCxHxW] [--repeats 11] [--threads 2]");
    }
    if (!wide()) throw std::runtime_error("this diagnostic is written for AVX-512 CPUs");
    omp_set_num_threads(threads);
    const size_t n = static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]);
    // Blocks of whole channel rows, as forward_fused / backward_fused take them (their block
    // parameters: about 1M and 256K elements here), and smaller ones.
    const size_t row = static_cast<size_t>(shape[2] * shape[3]);
    std::vector<float> x0(n), dz0(n), x(n), dz(n);
    for (size_t i = 0; i < n; i++) {
        x0[i] = float(i % 97) * 0.02f - 0.9f;
        dz0[i] = float(i % 89) * 0.01f - 0.4f;
    }
    bench::CacheFlush flush;
    const std::vector<std::string> variants = bench::floor_variants();
    struct Run {
        std::string name;
        std::function<void()> run;
        bool backward;
    };
    std::vector<Run> runs;
    for (size_t v = 0; v < variants.size(); v++) {
        runs.push_back({"floor forward (" + variants[v] + ")", [&, v] { bench::floor_scale(x.data(), n, int(v)); }, false});
        runs.push_back({"floor backward (" + variants[v] + ")",
                        [&, v] { bench::floor_combine(dz.data(), x.data(), n, int(v)); }, true});
    }
    for (size_t v = 0; v < variants.size(); v++) {
        if (variants[v] != "avx512") continue;
        runs.push_back({"read-only pass (avx512)", [&, v] { volatile double s = bench::floor_read(x.data(), n, int(v)); (void)s; }, false});
    }
    for (size_t elements : {size_t{1} << 20, size_t{1} << 18, size_t{1} << 16}) {
        const size_t b = std::max(row, elements / row * row);  // whole rows
        const std::string k = std::to_string(b * 4 / 1024) + " KB";
        runs.push_back({"forward one-pass f64 sums, " + k, [&, b] { forward_one_pass<double>(x.data(), n, b, false); }, false});
        runs.push_back({"forward one-pass f32 sums, " + k, [&, b] { forward_one_pass<float>(x.data(), n, b, false); }, false});
        runs.push_back({"forward pipelined f64 sums, " + k, [&, b] { forward_one_pass<double>(x.data(), n, b, true); }, false});
        runs.push_back({"forward pipelined f32 sums, " + k, [&, b] { forward_one_pass<float>(x.data(), n, b, true); }, false});
        runs.push_back({"backward one-pass f64 sums, " + k, [&, b] { backward_one_pass<double>(dz.data(), x.data(), n, b); }, true});
        runs.push_back({"backward one-pass f32 sums, " + k, [&, b] { backward_one_pass<float>(dz.data(), x.data(), n, b); }, true});
    }
    std::vector<std::vector<double>> t(runs.size());
    for (int r = 0; r <= repeats; r++) {
        for (size_t k = 0; k < runs.size(); k++) {
            std::memcpy(x.data(), x0.data(), n * 4);
            if (runs[k].backward) std::memcpy(dz.data(), dz0.data(), n * 4);
            flush();
            const double start = bench::now();
            runs[k].run();
            if (r > 0) t[k].push_back(bench::now() - start);  // round 0 warms up
        }
    }
    std::printf("iabn-bench-one-pass: [%lld,%lld,%lld,%lld] f32 nchw (%.1f MB), %d threads, medians of %d interleaved "
                "runs, caches flushed (%zu MB rewritten) before each\n",
                (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3], n * 4 / 1e6,
                threads, repeats, bench::CacheFlush::bytes() >> 20);
    double floor_forward = 1e30, floor_backward = 1e30;
    for (size_t k = 0; k < runs.size(); k++) {
        const double ms = bench::median(t[k]) * 1e3;
        if (runs[k].name.rfind("floor forward", 0) == 0) floor_forward = std::min(floor_forward, ms);
        if (runs[k].name.rfind("floor backward", 0) == 0) floor_backward = std::min(floor_backward, ms);
    }
    for (size_t k = 0; k < runs.size(); k++) {
        const double ms = bench::median(t[k]) * 1e3;
        std::printf("%-40s %8.3f ms  %5.2fx the %s floor\n", runs[k].name.c_str(), ms,
                    ms / (runs[k].backward ? floor_backward : floor_forward), runs[k].backward ? "backward" : "forward");
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench-one-pass: %s\n", e.what());
    return 1;
}
