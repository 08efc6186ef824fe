#include "device_driver.h"

#include "cuda_driver.h"

namespace iabn_test {

TestDevice* test_device(iabn::Device device) {
    switch (device) {
        case iabn::Device::cuda: return CudaDevice::get();
        case iabn::Device::opencl: return opencl_test_device();
        default: return nullptr;
    }
}

std::string device_unavailable(iabn::Device device) {
    switch (device) {
        case iabn::Device::cuda: return CudaDevice::why();
        case iabn::Device::opencl: return opencl_unavailable();
        default: return "";
    }
}

}  // namespace iabn_test
