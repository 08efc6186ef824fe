// Per-channel scratch of one call: the coefficients that pass from the per-channel kernels to the
// element-wise ones, and stand-ins for buffers the caller left empty (weight 1, bias 0, unwanted
// gradients). O(C) bytes, the only memory iabn allocates; for a Device::cuda call, device memory
// (filled from the host), freed when the Scratch is destroyed.
#pragma once

#include "iabn/iabn.h"

#include <HalideBuffer.h>

#include <vector>

namespace iabn::detail {

class Scratch {
public:
    Scratch(int64_t channels, DType channel_dtype, Device device = Device::cpu)
        : channels_(channels), dtype_(channel_dtype), device_(device) {}

    // A new [C] buffer of the channel dtype filled with `value`.
    Halide::Runtime::Buffer<void> filled(double value);
    // A new [C] buffer that a kernel will write in full (on a device: not filled first).
    Halide::Runtime::Buffer<void> output();
    // The caller's buffer if it has data, else a new one filled with `fallback`.
    Halide::Runtime::Buffer<void> or_filled(const TensorRef& t, double fallback);

private:
    int64_t channels_;
    DType dtype_;
    Device device_;
    std::vector<std::vector<double>> storage_;  // doubles: aligned and large enough for f32 too
    std::vector<Halide::Runtime::Buffer<void>> device_copies_;  // own the device allocations
};

}  // namespace iabn::detail
