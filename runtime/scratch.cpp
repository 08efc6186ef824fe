#include "scratch.h"

#include "device.h"
#include "view.h"

#include <algorithm>

namespace iabn::detail {

Scratch::Scratch(int64_t channels, DType channel_dtype, Call& call)
    : channels_(channels), dtype_(channel_dtype), call_(call), device_(device_backend(call.device())) {}

Scratch::~Scratch() {
    descriptors_.clear();  // detaches the device memory from Halide's descriptors first
    for (void* m : device_memory_) {
        try {
            device_->release(call_, m);
        } catch (const Error&) {
            // (a failed release leaks [C] values; a destructor cannot report it)
        }
    }
}

void* Scratch::allocate() {
    const size_t bytes = static_cast<size_t>(channels_) * dtype_size(dtype_);
    if (device_) {
        device_memory_.push_back(device_->allocate(call_, bytes));
        return device_memory_.back();
    }
    host_.emplace_back(static_cast<size_t>(channels_));
    return host_.back().data();
}

Halide::Runtime::Buffer<void> Scratch::filled(double value) {
    void* memory = allocate();
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
    Halide::Runtime::Buffer<void> b = channel_buffer(allocate(), dtype_, channels_, call_);
    descriptors_.push_back(b);
    return b;
}

Halide::Runtime::Buffer<void> Scratch::or_filled(const TensorRef& t, double fallback) {
    return t.data ? channel_buffer(t, channels_, call_) : filled(fallback);
}

}  // namespace iabn::detail
