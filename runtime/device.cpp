#include "device.h"

namespace iabn::detail {

const char* device_name(Device device) {
    switch (device) {
        case Device::cpu: return "Device::cpu";
        case Device::cuda: return "Device::cuda";
        case Device::opencl: return "Device::opencl";
    }
    return "an unknown device";
}

bool device_built(Device device) {
    switch (device) {
        case Device::cpu: return true;
        case Device::cuda: return cuda_backend() != nullptr;
        case Device::opencl: return opencl_backend() != nullptr;
    }
    return false;
}

std::string not_built(Device device) {
    return std::string("built with ") + (device == Device::cuda ? "IABN_CUDA" : "IABN_OPENCL") + "=OFF";
}

const DeviceBackend* device_backend(Device device) {
    if (device == Device::cpu) return nullptr;
    const DeviceBackend* b = device == Device::cuda ? cuda_backend() : device == Device::opencl ? opencl_backend() : nullptr;
    if (!b) {
        throw InvalidArgument(std::string(device_name(device)) + ": this build of iabn has no kernels for it (" +
                    not_built(device) + ")");
    }
    return b;
}

}  // namespace iabn::detail

namespace iabn {
bool has_cuda_kernels() { return detail::device_built(Device::cuda); }
bool has_opencl_kernels() { return detail::device_built(Device::opencl); }
}  // namespace iabn
