// Device::cuda support: the CUDA driver, the caller's context and stream, and device buffers.
// Built with the CUDA kernels (IABN_CUDA); without them every function here throws iabn::Error.
#pragma once

#include "iabn/iabn.h"

#include <HalideBuffer.h>

#include <vector>

namespace iabn::detail {

bool cuda_built();

// The CUDA part of one iabn call. Loads the driver (once per process) and hands the calling
// thread's current context and `stream` to the Halide runtime, which asks for them through the
// hooks installed here (they stay the thread's until its next call: freeing the call's device
// scratch asks for them too). finish() waits for the stream, so that the scratch can be freed
// when the call returns; the destructor waits too when an error cut the call short. Declare it
// after the call's Scratch, so that it is destroyed first.
class CudaSession {
public:
    explicit CudaSession(void* stream);
    ~CudaSession();
    CudaSession(const CudaSession&) = delete;
    CudaSession& operator=(const CudaSession&) = delete;
    void finish();  // throws iabn::Error on a CUDA error

private:
    bool finished_ = false;
};

// Makes `b` (a buffer with no host memory) describe the device memory at `device_ptr`; the
// buffer detaches from it when destroyed.
void wrap_device_memory(Halide::Runtime::Buffer<void>& b, void* device_ptr);
// Copies `b`'s host values into a new device allocation that `b` owns.
void copy_to_device(Halide::Runtime::Buffer<void>& b);
// A device allocation for `b`, owned by it, left unset.
void allocate_on_device(Halide::Runtime::Buffer<void>& b);
// Copies `bytes` from device memory to the host, on `stream`, and waits for them.
void copy_to_host(void* host, const void* device, size_t bytes, void* stream);

}  // namespace iabn::detail
