// Running a host-buffer test case on the GPU: a mirror that hands iabn device copies of the
// test's buffers (through the driver wrapper in cuda_driver.h) and reads them back.
#pragma once

#include "cuda_driver.h"
#include "test_util.h"

#include <vector>

namespace iabn_test {

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
