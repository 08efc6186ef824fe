// Running a host-buffer test case on a GPU: a mirror that hands iabn device copies of the
// test's buffers (through a TestDevice, device_driver.h) and reads them back.
#pragma once

#include "device_driver.h"
#include "test_util.h"

#include <vector>

namespace iabn_test {

// While alive, Buffer::ref() of any test Buffer returns a device view of a device copy of the
// buffer (Device::cpu: the host buffer itself); download() waits for `queue` (the calls return
// before their kernels are done), copies every copy back to its host buffer (call it after the
// iabn call, before the checks read the host buffers) and frees them.
class DeviceMirror {
public:
    DeviceMirror(iabn::Device device, void* queue);
    ~DeviceMirror();
    void download();

    static DeviceMirror* active();
    iabn::TensorRef ref(Buffer& b);

private:
    struct Copy {
        Buffer* host;
        void* device;
    };
    TestDevice* device_ = nullptr;  // nullptr: the host
    void* queue_;
    std::vector<Copy> copies_;
};

}  // namespace iabn_test
