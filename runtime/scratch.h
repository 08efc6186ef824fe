// Scratch of one call: the coefficients that pass from the per-channel kernels to the
// element-wise ones, stand-ins for buffers the caller left empty (weight 1, bias 0, unwanted
// gradients), and a GPU pass's block partials. O(C x blocks) bytes, the only memory iabn
// allocates itself. On the host, vectors of the call; for a device call, the slots of the
// queue's workspace (workspace.h: allocated once, kept for the next call), filled in the call's
// queue order.
#pragma once

#include "call.h"
#include "plan.h"  // GpuPartition
#include "validate.h"  // Checked
#include "workspace.h"

#include "iabn/iabn.h"

#include <HalideBuffer.h>

#include <memory>
#include <vector>

namespace iabn::detail {

class DeviceBackend;

class Scratch {
public:
    // A call's scratch for its checked arguments: the caller's Options::workspace if given (checked
    // here, before anything is written), else the queue's workspace on a device.
    Scratch(const Checked& checked, const Options& options, Call& call);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    // A new [C] buffer of the channel dtype filled with `value`.
    Halide::Runtime::Buffer<void> filled(double value);
    // A new [C] buffer that a kernel will write in full (on a device: not filled first).
    Halide::Runtime::Buffer<void> output();
    // The caller's buffer if it has data, else a new one filled with `fallback`.
    Halide::Runtime::Buffer<void> or_filled(const TensorRef& t, double fallback);
    // A GPU pass's block partials for `partition` (device calls only).
    Halide::Runtime::Buffer<void> partials(const iabn_sched::GpuPartition& partition);

private:
    void* allocate(size_t bytes);
    size_t channel_bytes() const { return static_cast<size_t>(channels_) * dtype_size(dtype_); }  // a [C] buffer

    int64_t channels_;
    DType dtype_;
    Call& call_;
    const DeviceBackend* device_;               // nullptr on the host
    std::vector<std::vector<double>> host_;     // doubles: aligned and large enough for f32 too
    std::unique_ptr<WorkspaceLease> workspace_;  // device calls without a caller's workspace
    size_t next_slot_ = 0;
    char* given_ = nullptr;  // the caller's workspace, and what of it is still free
    size_t given_left_ = 0;
    std::vector<Halide::Runtime::Buffer<void>> descriptors_;  // of the device memory
};

}  // namespace iabn::detail
