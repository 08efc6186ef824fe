#include "scratch.h"

#include "cuda.h"
#include "view.h"

namespace iabn::detail {

Halide::Runtime::Buffer<void> Scratch::filled(double value) {
    storage_.emplace_back(static_cast<size_t>(channels_));
    std::vector<double>& v = storage_.back();
    if (dtype_ == DType::f64) {
        std::fill(v.begin(), v.end(), value);
    } else {
        float* f = reinterpret_cast<float*>(v.data());
        std::fill(f, f + channels_, static_cast<float>(value));
    }
    Halide::Runtime::Buffer<void> b = channel_buffer(v.data(), dtype_, channels_);
    if (device_ == Device::cuda) {
        copy_to_device(b);
        device_copies_.push_back(b);
    }
    return b;
}

Halide::Runtime::Buffer<void> Scratch::output() {
    if (device_ == Device::cpu) return filled(0);
    Halide::Runtime::Buffer<void> b = channel_buffer(nullptr, dtype_, channels_);  // no host memory
    allocate_on_device(b);
    device_copies_.push_back(b);
    return b;
}

Halide::Runtime::Buffer<void> Scratch::or_filled(const TensorRef& t, double fallback) {
    return t.data ? channel_buffer(t.data, t.dtype, channels_, t.device) : filled(fallback);
}

}  // namespace iabn::detail
