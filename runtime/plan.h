// What the runtime runs for a tensor, as pure rules without Halide: the 3-D view (s, c, n) its
// kernels see (generators/tensor_view.h states the same from the kernels' side), whether a
// training pass runs one pass per channel or two, how a GPU training pass shares a channel among
// blocks, and how each pipeline's buffers are bound. The tuner (tools/tune) times exactly these.
#pragma once

#include "gpu_blocks.h"  // (schedules/: the rule the GPU generators share)
#include "iabn/iabn.h"

#include <cstddef>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace iabn::detail {

struct View {
    Layout kernel_layout;       // nchw: s dense; nhwc: c dense
    int64_t s, c, n;            // extents
    int64_t stride_s, stride_c, stride_n;
    int64_t per_channel() const { return s * n; }  // M
};

// Rank-2 tensors and nchw tensors with spatial size 1 have channels as the dense dim, so they
// run on the channels-last kernels whatever the declared layout. `shape` has rank >= 2 and no
// zero dim (the validation checks both first).
inline View make_view(const std::vector<int64_t>& shape, Layout layout) {
    const int64_t numel = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    const int64_t spatial = numel / (shape[0] * shape[1]);
    if (layout == Layout::nchw && spatial > 1) {
        const int64_t c = shape[1];
        return {Layout::nchw, spatial, c, shape[0], 1, spatial, c * spatial};
    }
    const int64_t c = layout == Layout::nchw ? shape[1] : shape.back();
    const int64_t m = numel / c;
    return {Layout::nhwc, m, c, 1, c, 1, 0};  // n has extent 1: its stride is never used
}

// One pass per channel (where a view has one-pass kernels: nchw on CPUs) keeps every thread busy
// only with at least one channel per thread; with fewer channels the two-pass kernels, which also
// split channels into blocks, are faster.
inline bool one_pass_suits(int64_t channels, int threads) { return channels >= threads; }

// A GPU training pass's partition of a view's channels among blocks (schedules/gpu_blocks.h).
inline iabn_sched::GpuPartition gpu_partition(const View& v) {
    return iabn_sched::gpu_partition(v.s, v.c, v.n, v.kernel_layout == Layout::nhwc);
}

// Whether a GPU training pass runs the resident variant (nchw only: one block per channel, two
// kernels instead of three; schedules/gpu_blocks.h says when it suits). IABN_GPU_RESIDENT=1 or 0
// forces it on or off (the tests run the device suite both ways). `has_kernels`: the build has
// the variant for this view (nchw GPU kernels).
inline bool gpu_resident(const View& v, bool has_kernels) {
    static const char* const forced = std::getenv("IABN_GPU_RESIDENT");
    if (!has_kernels || v.kernel_layout != Layout::nchw) return false;
    if (forced && *forced) return std::string(forced) != "0";
    return iabn_sched::gpu_resident_suits(v.s, v.c, v.n);
}
inline iabn_sched::GpuPartition gpu_resident_partition(const View& v) {
    return iabn_sched::gpu_resident_partition(v.s, v.n);
}

// A GPU apply loads and stores 128 bits a thread (the vector variant: generators/tensor_view.h,
// element_view()), and the nchw block partials load them (kernels.h, gpu_partials_for()),
// where the view's dense dim is a whole number of vectors, every tensor it
// touches is 16-byte aligned (`aligned`) and the tensor is under 2 GB (the variant indexes in 32
// bits: Halide proves a vector's alignment only there); the scalar variant takes the rest.
// Returns the elements per vector, or 1. IABN_GPU_VECTOR=0 forces the scalar variant.
inline int gpu_vector_elements(DType dtype) { return 16 / static_cast<int>(dtype_size(dtype)); }
inline int gpu_apply_vector(const View& v, DType dtype, bool aligned, bool has_kernels) {
    static const char* const forced = std::getenv("IABN_GPU_VECTOR");
    if (!has_kernels || !aligned || (forced && std::string(forced) == "0")) return 1;
    const int vector = gpu_vector_elements(dtype);
    const int64_t dense = v.kernel_layout == Layout::nchw ? v.s : v.c;
    const int64_t bytes = v.s * v.c * v.n * static_cast<int64_t>(dtype_size(dtype));
    return dense % vector == 0 && bytes < (int64_t{1} << 31) ? vector : 1;
}

// The device memory a call's scratch takes at most (a caller's Options::workspace must hold it):
// scratch_slots per-channel buffers (coefficients, stand-ins) and the block partials, each
// aligned to scratch_alignment bytes.
constexpr size_t scratch_slots = 16, scratch_alignment = 256;
inline size_t aligned_bytes(size_t bytes) { return (bytes + scratch_alignment - 1) / scratch_alignment * scratch_alignment; }
inline size_t workspace_bytes(const View& v) {
    const size_t channels = static_cast<size_t>(v.c);
    const size_t partials = static_cast<size_t>(gpu_partition(v).values(v.c));
    return scratch_slots * aligned_bytes(channels * sizeof(double)) + aligned_bytes(partials * sizeof(double));
}

// How the runtime binds a pipeline's buffers (runtime/forward.cpp, backward.cpp) where it is not
// plain (each Input and Output bound to the caller's buffer of its name). A pipeline may write an
// Output over the caller's tensor (`overwritten`: where the pipeline also reads it as an Input of
// that name, the same memory is bound twice); Outputs that read themselves (`updated`) are the
// caller's per-channel buffers of those names; Inputs in `from` are Outputs of the pipeline run
// just before it (`previous`), which the runtime keeps in its scratch.
// tests/kernels/test_wiring.cpp holds these names against the generated kernels' metadata.
struct Wiring {
    std::string writer, overwritten;  // Output, and the caller's tensor it overwrites
    std::vector<std::string> updated;
    std::string previous;
    std::vector<std::pair<std::string, std::string>> from;  // (Input, Output of `previous`)
};

inline Wiring wiring(const std::string& generator) {
    if (generator == "forward_fused") return {"z", "x", {"running_mean", "running_var"}, "", {}};
    if (generator == "forward_stats") return {"", "", {"running_mean", "running_var"}, "", {}};
    if (generator == "forward_apply")
        return {"z", "x", {}, "forward_stats", {{"pivot", "apply_pivot"}, {"scale", "apply_scale"}, {"shift", "apply_shift"}}};
    if (generator == "backward_fused") return {"dx", "dz", {}, "", {}};
    if (generator == "backward_reduce") return {};
    if (generator == "backward_apply") {
        Wiring w{"dx", "dz", {}, "backward_reduce", {}};
        for (const char* k : {"grad_scale", "grad_mean_dy", "grad_mean_dy_xhat", "xhat_bias", "xhat_inv_g"})
            w.from.emplace_back(k, k);
        return w;
    }
    throw std::invalid_argument("iabn: no wiring for pipeline " + generator);
}

}  // namespace iabn::detail
