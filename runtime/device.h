// A GPU API behind one small interface. The kernels themselves reach the device through
// Halide's runtime; what a backend adds is what Halide cannot know: the caller's context and
// queue (handed to Halide's hooks for the calls that carry them), device memory for the call's
// per-channel scratch, and the few reads the validation makes. One backend per file:
// device_cuda.cpp, device_opencl.cpp; a new API is one more file and one line in device.cpp.
//
// Ordering: everything a backend does for a call is enqueued on the caller's queue (stream) in
// order, and nothing waits for the device, except read(), which returns values to the host.
#pragma once

#include "call.h"

#include "iabn/iabn.h"

#include <HalideRuntime.h>

#include <cstddef>
#include <string>

namespace iabn::detail {

// The Halide type of a dtype (f16, bf16, f32, f64).
halide_type_t halide_type(DType dtype);

class DeviceBackend {
public:
    virtual ~DeviceBackend() = default;

    virtual const char* name() const = 0;  // "Device::cuda"
    virtual const halide_device_interface_t* interface() const = 0;

    // Binds the caller's context and queue (from `options`, or the thread's current context) to
    // `call`: its kernels and operations then run there. Loads the API's library and installs
    // the Halide hooks at the first call. Throws iabn::Error when there is no context or queue.
    virtual void begin(Call& call, const Options& options) const = 0;

    // [C]-sized device memory for the call's scratch, usable by work enqueued after it;
    // release() hands it back in queue order (work enqueued before still reads it safely).
    virtual void* allocate(Call& call, size_t bytes) const = 0;
    virtual void release(Call& call, void* memory) const = 0;
    // Enqueues `count` values of `dtype` (f32 or f64) set to `value`.
    virtual void fill(Call& call, void* memory, size_t count, DType dtype, double value) const = 0;
    // Copies `bytes` to the host once the work enqueued before is done (the one waiting call).
    virtual void read(Call& call, void* host, const void* memory, size_t bytes) const = 0;

    // The element type the device's kernels take for a tensor of `dtype`: the dtype itself,
    // except 16-bit floats, which GPU kernels take as their bits (generators/types.h says why).
    halide_type_t element_type(DType dtype) const {
        return dtype_size(dtype) == 2 ? halide_type_t(halide_type_uint, 16) : halide_type(dtype);
    }

    // Why the call's kernels cannot use the buffer at `data` (not this API's memory, or memory of
    // another device or context than the call's: the kernels would fault, or read another
    // device's memory); empty where they can. After begin().
    virtual std::string foreign(Call& call, const void* data) const = 0;

    // Whether a data pointer is an address (a range of bytes can overlap another range) or an
    // opaque handle (an OpenCL cl_mem: only the same handle is known to be the same memory).
    virtual bool pointers_are_addresses() const = 0;
};

// The backend of a device; nullptr for Device::cpu. Throws iabn::Error for a device this build
// has no kernels for.
const DeviceBackend* device_backend(Device device);
bool device_built(Device device);
const char* device_name(Device device);  // "Device::cpu", "Device::cuda", "Device::opencl"
// Why this build has no kernels for `device`: "built with IABN_CUDA=OFF" (or IABN_OPENCL).
std::string not_built(Device device);

// The backends, defined in their own files (a build without one gets a stub that says so).
const DeviceBackend* cuda_backend();    // nullptr without IABN_CUDA
const DeviceBackend* opencl_backend();  // nullptr without IABN_OPENCL

}  // namespace iabn::detail
