#include "device_mirror.h"

#include <stdexcept>

namespace iabn_test {
namespace {
thread_local DeviceMirror* t_mirror = nullptr;
}  // namespace

DeviceMirror::DeviceMirror(iabn::Device device, void* queue) : queue_(queue) {
    if (device == iabn::Device::cpu) return;
    device_ = test_device(device);
    if (!device_) throw std::logic_error("DeviceMirror: " + device_unavailable(device));
    t_mirror = this;
}

DeviceMirror::~DeviceMirror() {
    if (!device_) return;
    t_mirror = nullptr;
    device_->synchronize(queue_);  // (after an error too: nothing may still use the copies)
    for (const Copy& c : copies_) device_->free(c.device);
}

DeviceMirror* DeviceMirror::active() { return t_mirror; }

iabn::TensorRef DeviceMirror::ref(Buffer& b) {
    for (const Copy& c : copies_) {
        if (c.host == &b) return b.ref_on(device_->device(), c.device);
    }
    void* d = device_->alloc(b.bytes());
    device_->upload(d, b.data(), b.bytes());
    copies_.push_back({&b, d});
    return b.ref_on(device_->device(), d);
}

void DeviceMirror::download() {
    if (!device_) return;
    device_->synchronize(queue_);
    for (const Copy& c : copies_) device_->download(c.host->data(), c.device, c.host->bytes());
}

iabn::TensorRef Buffer::ref() {
    if (DeviceMirror* m = DeviceMirror::active()) return m->ref(*this);
    return ref_on(iabn::Device::cpu, data());
}

}  // namespace iabn_test
