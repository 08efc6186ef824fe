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
};

// The kernels for a tensor dtype and a view layout; throws iabn::Error if this build has none.
const Kernels& kernels_for(DType dtype, Layout kernel_layout);

}  // namespace iabn::detail
