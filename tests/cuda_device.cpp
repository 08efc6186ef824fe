#include "cuda_device.h"

#include <stdexcept>

namespace iabn_test {
namespace {
thread_local DeviceMirror* t_mirror = nullptr;
}  // namespace

DeviceMirror::DeviceMirror(iabn::Device device) : on_device_(device == iabn::Device::cuda) {
    if (on_device_) {
        if (!CudaDevice::get()) throw std::logic_error("DeviceMirror: " + CudaDevice::why());
        t_mirror = this;
    }
}

DeviceMirror::~DeviceMirror() {
    if (!on_device_) return;
    t_mirror = nullptr;
    for (const Copy& c : copies_) CudaDevice::get()->free(c.device);
}

DeviceMirror* DeviceMirror::active() { return t_mirror; }

iabn::TensorRef DeviceMirror::ref(Buffer& b) {
    for (const Copy& c : copies_) {
        if (c.host == &b) return b.ref_on(iabn::Device::cuda, c.device);
    }
    void* d = CudaDevice::get()->alloc(b.bytes());
    CudaDevice::get()->upload(d, b.data(), b.bytes());
    copies_.push_back({&b, d});
    return b.ref_on(iabn::Device::cuda, d);
}

void DeviceMirror::download() {
    for (const Copy& c : copies_) CudaDevice::get()->download(c.host->data(), c.device, c.host->bytes());
}

iabn::TensorRef Buffer::ref() {
    if (DeviceMirror* m = DeviceMirror::active()) return m->ref(*this);
    return ref_on(iabn::Device::cpu, data());
}

}  // namespace iabn_test
