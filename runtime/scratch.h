// Per-channel scratch of one call: the coefficients that pass from the per-channel kernels to the
// element-wise ones, and stand-ins for buffers the caller left empty (weight 1, bias 0, unwanted
// gradients). O(C) bytes, the only memory iabn allocates itself; for a device call, device
// memory allocated and filled in the call's queue order, and released in queue order when the
// Scratch is destroyed (after every descriptor of it).
#pragma once

#include "call.h"

#include "iabn/iabn.h"

#include <HalideBuffer.h>

#include <vector>

namespace iabn::detail {

class DeviceBackend;

class Scratch {
public:
    Scratch(int64_t channels, DType channel_dtype, Call& call);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    // A new [C] buffer of the channel dtype filled with `value`.
    Halide::Runtime::Buffer<void> filled(double value);
    // A new [C] buffer that a kernel will write in full (on a device: not filled first).
    Halide::Runtime::Buffer<void> output();
    // The caller's buffer if it has data, else a new one filled with `fallback`.
    Halide::Runtime::Buffer<void> or_filled(const TensorRef& t, double fallback);

private:
    void* allocate();

    int64_t channels_;
    DType dtype_;
    Call& call_;
    const DeviceBackend* device_;               // nullptr on the host
    std::vector<std::vector<double>> host_;     // doubles: aligned and large enough for f32 too
    std::vector<void*> device_memory_;
    std::vector<Halide::Runtime::Buffer<void>> descriptors_;  // of the device memory
};

}  // namespace iabn::detail
