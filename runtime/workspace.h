// Device memory kept between calls, one workspace per (device, context, queue): the per-channel
// scratch of a call (coefficients, stand-ins) and the GPU passes' block partials. A call on a
// queue takes that queue's workspace for its whole duration: its memory is allocated at the first
// call that needs that much and reused after, so a steady-state call allocates nothing. Two calls
// on one queue from two threads take turns (they would run one after the other on the device
// anyway); calls on different queues run side by side, each with its own workspace.
// iabn::release_workspace() hands a workspace's memory back in its queue's order.
#pragma once

#include "call.h"

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace iabn::detail {

class DeviceBackend;
struct Workspace;

// A call's hold on its queue's workspace (call.device_context and device_queue, set by the device
// backend's begin()). slot(i, bytes): at least `bytes` of device memory, the same from call to
// call while big enough (a smaller one is released in queue order and replaced).
class WorkspaceLease {
public:
    WorkspaceLease(const DeviceBackend& device, Call& call);
    ~WorkspaceLease();
    WorkspaceLease(const WorkspaceLease&) = delete;
    WorkspaceLease& operator=(const WorkspaceLease&) = delete;

    void* slot(size_t index, size_t bytes);

private:
    const DeviceBackend& device_;
    Call& call_;
    std::shared_ptr<Workspace> workspace_;
    std::unique_lock<std::mutex> hold_;
};

// Releases the workspace of (device, context, queue), if any, in the queue's order.
void release_workspace(const DeviceBackend& device, Call& call);

}  // namespace iabn::detail
