// The test suite's own access to a CUDA GPU, through the driver API loaded at run time (the suite
// builds and runs where there is no driver): memory to hand to iabn as Device::cuda tensors, and
// a mirror that runs a host-buffer test case on the device.
#pragma once

#include "test_util.h"

#include <string>
#include <vector>

namespace iabn_test {

// The first GPU, with its primary context made current on the calling thread; nullptr when this
// machine has no usable CUDA device (why() says why).
class CudaDevice {
public:
    static CudaDevice* get();
    static const std::string& why();

    void* alloc(size_t bytes);
    void free(void* ptr);
    void upload(void* device, const void* host, size_t bytes);
    void download(void* host, const void* device, size_t bytes);
    void* create_stream();  // a non-blocking stream
    void destroy_stream(void* stream);
    void make_current();  // on the calling thread (each test thread must)
};

// While alive, Buffer::ref() of any test Buffer returns a Device::cuda view of a device copy of
// the buffer; download() copies every such copy back to its host buffer (call it after the iabn
// call, before the checks read the host buffers) and frees them.
class DeviceMirror {
public:
    explicit DeviceMirror(iabn::Device device);
    ~DeviceMirror();
    void download();

    static DeviceMirror* active();
    iabn::TensorRef ref(Buffer& b);

private:
    struct Copy {
        Buffer* host;
        void* device;
    };
    bool on_device_;
    std::vector<Copy> copies_;
};

}  // namespace iabn_test
