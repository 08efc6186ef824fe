// The 3-D view (s, c, n) every element-wise kernel works on (see generators/tensor_view.h), and
// the Halide buffer descriptors that wrap the caller's memory without copying it.
#pragma once

#include "call.h"

#include "iabn/iabn.h"

#include <HalideBuffer.h>

namespace iabn::detail {

struct View {
    Layout kernel_layout;       // nchw: s dense; nhwc: c dense
    int64_t s, c, n;            // extents
    int64_t stride_s, stride_c, stride_n;
    int64_t per_channel() const { return s * n; }  // M
};

// Rank-2 tensors and nchw tensors with spatial size 1 have channels as the dense dim, so they
// run on the channels-last kernels whatever the declared layout.
View make_view(const std::vector<int64_t>& shape, Layout layout);

// Descriptors of the caller's memory. Host memory is used as it is; device memory (the data of
// a Device::cuda or Device::opencl buffer) is wrapped for the call's device, with no host
// memory, and detached when the last copy of the descriptor is destroyed.
Halide::Runtime::Buffer<void> tensor_buffer(const TensorRef& t, const View& v, Call& call);
Halide::Runtime::Buffer<void> channel_buffer(const TensorRef& t, int64_t channels, Call& call);
// The f64 partials of a synchronized pass: [width] (rows == 0) or the gathered [rows, width],
// as Halide's (i, p).
Halide::Runtime::Buffer<void> sync_buffer(const TensorRef& t, int64_t width, int64_t rows, Call& call);
// The same over memory given as a pointer (the call's own scratch, host or device).
Halide::Runtime::Buffer<void> channel_buffer(void* data, DType dtype, int64_t channels, Call& call);

}  // namespace iabn::detail
