// The 3-D view (s, c, n) every element-wise kernel works on (see generators/tensor_view.h), and
// the Halide buffer descriptors that wrap the caller's memory without copying it.
#pragma once

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

// Device::cuda: `data` is a device pointer; the buffer describes it without host memory.
Halide::Runtime::Buffer<void> tensor_buffer(void* data, DType dtype, const View& v, Device device = Device::cpu);
Halide::Runtime::Buffer<void> channel_buffer(void* data, DType dtype, int64_t channels, Device device = Device::cpu);

}  // namespace iabn::detail
