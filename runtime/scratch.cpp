#include "scratch.h"

#include "device.h"
#include "view.h"

#include <algorithm>
#include <cstdint>
#include <string>

namespace iabn::detail {

Scratch::Scratch(const Checked& checked, const Options& options, Call& call)
    : channels_(checked.view.c), dtype_(checked.channel_dtype), call_(call), device_(device_backend(call.device())) {
    if (!device_) return;
    if (!options.workspace) {
        workspace_ = std::make_unique<WorkspaceLease>(*device_, call);
        return;
    }
    if (!device_->pointers_are_addresses()) {
        throw InvalidArgument(std::string(device_->name()) +
                              ": options.workspace: expected nullptr (this device keeps its own workspace per queue), "
                              "got a buffer");
    }
    const size_t needed = workspace_bytes(checked.view);
    if (options.workspace_size < needed) {
        throw InvalidArgument("options.workspace_size: expected at least " + std::to_string(needed) +
                              " bytes (iabn::workspace_bytes), got " + std::to_string(options.workspace_size));
    }
    if (reinterpret_cast<uintptr_t>(options.workspace) % scratch_alignment != 0) {
        throw InvalidArgument("options.workspace: expected an address aligned to " +
                              std::to_string(scratch_alignment) + " bytes");
    }
    given_ = static_cast<char*>(options.workspace);
    given_left_ = options.workspace_size;
}

Scratch::~Scratch() {
    descriptors_.clear();  // detaches the workspace's memory from Halide's descriptors
}

void* Scratch::allocate(size_t bytes) {
    if (given_) {
        const size_t taken = aligned_bytes(bytes);
        if (taken > given_left_) throw Error("iabn: the call's scratch outgrew workspace_bytes() (a bug of iabn's)");
        void* p = given_;
        given_ += taken;
        given_left_ -= taken;
        return p;
    }
    if (device_) return workspace_->slot(next_slot_++, bytes);
    host_.emplace_back((bytes + sizeof(double) - 1) / sizeof(double));
    return host_.back().data();
}

Halide::Runtime::Buffer<void> Scratch::partials(const iabn_sched::GpuPartition& p) {
    if (!device_) throw Error("iabn: block partials are a device call's");
    const size_t values = static_cast<size_t>(p.values(channels_));
    Halide::Runtime::Buffer<void> b = partials_buffer(allocate(values * sizeof(double)), p, channels_, call_);
    descriptors_.push_back(b);
    return b;
}

Halide::Runtime::Buffer<void> Scratch::filled(double value) {
    void* memory = allocate(channel_bytes());
    if (device_) {
        device_->fill(call_, memory, static_cast<size_t>(channels_), dtype_, value);
    } else if (dtype_ == DType::f64) {
        std::fill_n(static_cast<double*>(memory), channels_, value);
    } else {
        std::fill_n(static_cast<float*>(memory), channels_, static_cast<float>(value));
    }
    Halide::Runtime::Buffer<void> b = channel_buffer(memory, dtype_, channels_, call_);
    if (device_) descriptors_.push_back(b);
    return b;
}

Halide::Runtime::Buffer<void> Scratch::output() {
    if (!device_) return filled(0);
    Halide::Runtime::Buffer<void> b = channel_buffer(allocate(channel_bytes()), dtype_, channels_, call_);
    descriptors_.push_back(b);
    return b;
}

Halide::Runtime::Buffer<void> Scratch::or_filled(const TensorRef& t, double fallback) {
    return t.data ? channel_buffer(t, channels_, call_) : filled(fallback);
}

}  // namespace iabn::detail
