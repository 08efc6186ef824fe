#include "workspace.h"

#include "device.h"
#include "halide_glue.h"
#include "plan.h"

#include <string>

#include <map>
#include <tuple>

namespace iabn::detail {

struct Workspace {
    std::mutex in_use;  // held by the call that uses it
    struct Slot {
        void* memory = nullptr;
        size_t bytes = 0;
    };
    std::vector<Slot> slots;
};

namespace {

using Key = std::tuple<const DeviceBackend*, void*, void*, std::thread::id>;  // device, context, queue (thread)

std::mutex registry_lock;
std::map<Key, std::shared_ptr<Workspace>>& registry() {
    static auto* r = new std::map<Key, std::shared_ptr<Workspace>>;  // (never destroyed: device
    return *r;                                                       //  memory outlives exit)
}

std::shared_ptr<Workspace> find_or_add(const DeviceBackend& device, const Call& call) {
    std::lock_guard<std::mutex> lock(registry_lock);
    auto& w = registry()[Key{&device, call.device_context, call.device_queue, call.queue_thread}];
    if (!w) w = std::make_shared<Workspace>();
    return w;
}

}  // namespace

WorkspaceLease::WorkspaceLease(const DeviceBackend& device, Call& call)
    : device_(device), call_(call), workspace_(find_or_add(device, call)), hold_(workspace_->in_use) {}

WorkspaceLease::~WorkspaceLease() = default;

void* WorkspaceLease::slot(size_t index, size_t bytes) {
    auto& slots = workspace_->slots;
    if (slots.size() <= index) slots.resize(index + 1);
    Workspace::Slot& s = slots[index];
    if (s.bytes < bytes) {
        if (s.memory) {
            device_.release(call_, s.memory);  // in queue order: work enqueued before still reads it
            s = {};
        }
        s.memory = device_.allocate(call_, bytes);
        s.bytes = bytes;
    }
    return s.memory;
}

void release_workspace(const DeviceBackend& device, Call& call) {
    std::shared_ptr<Workspace> w;
    {
        std::lock_guard<std::mutex> lock(registry_lock);
        auto it = registry().find(Key{&device, call.device_context, call.device_queue, call.queue_thread});
        if (it == registry().end()) return;
        w = it->second;
        registry().erase(it);
    }
    std::lock_guard<std::mutex> hold(w->in_use);  // (after any call still using it)
    for (Workspace::Slot& s : w->slots) {
        if (s.memory) device.release(call, s.memory);
    }
    w->slots.clear();
}

}  // namespace iabn::detail

namespace iabn {

void release_workspace(Device device, const Options& options) {
    const detail::DeviceBackend* backend = detail::device_backend(device);
    if (!backend) return;
    detail::init_halide_runtime();
    detail::Call call(device);
    backend->begin(call, options);
    detail::release_workspace(*backend, call);
}

size_t workspace_bytes(const TensorRef& x, const Options& options) {
    if (x.shape.size() < 2) throw InvalidArgument("x.shape: expected rank >= 2, got rank " + std::to_string(x.shape.size()));
    for (int64_t d : x.shape) {
        if (d < 1) throw InvalidArgument("x.shape: expected every dimension >= 1, got " + std::to_string(d));
    }
    return detail::workspace_bytes(detail::make_view(x.shape, options.layout));
}

}  // namespace iabn
