// A GPU as the tests and the GPU benchmark drive it: memory, copies and queues of one API
// (CUDA or OpenCL), through the runtime's own loader of the driver (runtime/device_api.h). iabn
// itself needs none of this: a framework hands it memory and a queue it already has.
#pragma once

#include <iabn/iabn.h>

#include <cstddef>
#include <string>

namespace iabn_test {

class TestDevice {
public:
    virtual ~TestDevice() = default;
    virtual iabn::Device device() const = 0;
    virtual std::string name() = 0;  // the GPU's (or OpenCL device's) name

    virtual void* alloc(size_t bytes) = 0;  // a CUdeviceptr or a cl_mem
    virtual void free(void* memory) = 0;
    virtual void upload(void* memory, const void* host, size_t bytes) = 0;    // returns when done
    virtual void download(void* host, const void* memory, size_t bytes) = 0;  // after the default queue's work

    // A queue of its own (a CUDA stream, an OpenCL command queue), and the one calls use when a
    // case names none (CUDA: the default stream, nullptr; OpenCL: one the driver made).
    virtual void* create_queue() = 0;
    virtual void destroy_queue(void* queue) = 0;
    virtual void* default_queue() = 0;
    virtual void synchronize(void* queue) = 0;
    // Points `options` at `queue` (nullptr: the default queue).
    virtual void set_queue(iabn::Options& options, void* queue) = 0;
};

// The device of an API on this machine, or nullptr (device_unavailable() then says why: no
// kernels in this build, no driver, no device).
TestDevice* test_device(iabn::Device device);
std::string device_unavailable(iabn::Device device);

// The OpenCL one (opencl_driver.cpp; CUDA's is CudaDevice::get(), cuda_driver.h).
TestDevice* opencl_test_device();
const std::string& opencl_unavailable();

}  // namespace iabn_test
