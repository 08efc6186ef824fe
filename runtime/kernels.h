// The AOT kernels of one (dtype, layout): the runtime's dispatch table.
// Which kernels exist is decided by the build (cmake/IabnKernels.cmake writes the list).
#pragma once

#include "iabn/iabn.h"
#include "iabn_kernel_headers.h"  // generated: one header per instantiated kernel

namespace iabn::detail {

// Every instantiation of a generator has the same signature; the f32 nchw one is always built.
struct Kernels {
    decltype(&iabn_forward_stats_f32_nchw) forward_stats = nullptr;
    decltype(&iabn_forward_apply_f32_nchw) forward_apply = nullptr;
    decltype(&iabn_backward_reduce_f32_nchw) backward_reduce = nullptr;
    decltype(&iabn_backward_apply_f32_nchw) backward_apply = nullptr;
    decltype(&iabn_global_coeffs_f32_any) global_coeffs = nullptr;
    // Statistics across processes: the local partials, and the merge of every process's.
    decltype(&iabn_forward_partials_f32_nchw) forward_partials = nullptr;
    decltype(&iabn_forward_merge_f32_any) forward_merge = nullptr;
    decltype(&iabn_backward_partials_f32_nchw) backward_partials = nullptr;
    decltype(&iabn_backward_merge_f32_any) backward_merge = nullptr;
    // One pass per channel; nchw only (null for channels-last).
    decltype(&iabn_forward_fused_f32_nchw) forward_fused = nullptr;
    decltype(&iabn_backward_fused_f32_nchw) backward_fused = nullptr;
};

// The kernels for a tensor dtype, a view layout and a device; throws iabn::Error if this build
// has none. (The GPU kernels have no one-pass variants: a GPU spreads each channel's reduction
// over many blocks instead.)
const Kernels& kernels_for(DType dtype, Layout kernel_layout, Device device = Device::cpu);

// Whether a training pass runs the one-pass kernels: `k` has them and plan.h's rule says so for
// the kernel threads (IABN_ONE_PASS=0 says no).
bool use_fused(const Kernels& k, int64_t channels);

}  // namespace iabn::detail
