// iabn::InPlaceABN: owns the per-channel state and forwards to iabn::forward / iabn::backward.
#include "iabn/iabn.h"

#include "validate.h"

#include <array>
#include <limits>
#include <utility>

namespace iabn {

InPlaceABN::InPlaceABN(int64_t channels, const Options& options, DType dtype)
    : channels_(channels), dtype_(dtype), options_(options) {
    // A channel count is a view extent of the kernels: below 2^31.
    if (channels < 1 || channels > std::numeric_limits<int32_t>::max()) {
        throw InvalidArgument("iabn::InPlaceABN: channels: expected 1..2147483647, got " + std::to_string(channels));
    }
    const double initial[] = {1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0};  // in the order of buffers()
    size_t i = 0;
    for (TensorRef* t : buffers()) *t = channel_buffer(initial[i++]);
}

InPlaceABN::InPlaceABN(const InPlaceABN& other)
    : channels_(other.channels_),
      dtype_(other.dtype_),
      options_(other.options_),
      storage_(other.storage_),
      state_(other.state_),
      grads_(other.grads_) {
    bind();
}

InPlaceABN::InPlaceABN(InPlaceABN&& other) noexcept
    : channels_(other.channels_),
      dtype_(other.dtype_),
      options_(other.options_),
      storage_(std::move(other.storage_)),
      state_(std::move(other.state_)),
      grads_(std::move(other.grads_)) {
    bind();
    other.unbind();
}

InPlaceABN& InPlaceABN::operator=(InPlaceABN other) noexcept {
    std::swap(channels_, other.channels_);
    std::swap(dtype_, other.dtype_);
    std::swap(options_, other.options_);
    std::swap(storage_, other.storage_);
    std::swap(state_, other.state_);
    std::swap(grads_, other.grads_);
    bind();
    return *this;
}

std::array<TensorRef*, 8> InPlaceABN::buffers() {
    return {&state_.weight,     &state_.bias,         &state_.running_mean, &state_.running_var,
            &state_.saved_mean, &state_.saved_invstd, &grads_.weight_grad,  &grads_.bias_grad};
}

void InPlaceABN::bind() {
    size_t i = 0;
    for (TensorRef* t : buffers()) t->data = i < storage_.size() ? storage_[i++].data() : nullptr;
}

void InPlaceABN::unbind() {
    channels_ = 0;
    storage_.clear();
    bind();
}

TensorRef InPlaceABN::channel_buffer(double init) {
    TensorRef t;
    t.dtype = detail::channel_dtype_for(dtype_);
    t.shape = {channels_};
    storage_.emplace_back(static_cast<size_t>(channels_) * dtype_size(t.dtype));
    t.data = storage_.back().data();
    write(t, std::vector<double>(static_cast<size_t>(channels_), init));
    return t;
}

std::vector<double> InPlaceABN::read(const TensorRef& t) const {
    std::vector<double> out(static_cast<size_t>(channels_));
    for (int64_t c = 0; c < channels_; c++) {
        out[c] = t.dtype == DType::f64 ? static_cast<const double*>(t.data)[c] : static_cast<const float*>(t.data)[c];
    }
    return out;
}

void InPlaceABN::write(const TensorRef& t, const std::vector<double>& values) {
    if (static_cast<int64_t>(values.size()) != channels_) {
        throw InvalidArgument("iabn::InPlaceABN: values: expected " + std::to_string(channels_) + " values, got " +
                    std::to_string(values.size()));
    }
    for (int64_t c = 0; c < channels_; c++) {
        if (t.dtype == DType::f64) {
            static_cast<double*>(t.data)[c] = values[c];
        } else {
            static_cast<float*>(t.data)[c] = static_cast<float>(values[c]);
        }
    }
}

void InPlaceABN::forward(const TensorRef& x) { iabn::forward(x, state_, options_); }

void InPlaceABN::backward(const TensorRef& z, const TensorRef& dz) { iabn::backward(z, dz, state_, grads_, options_); }

}  // namespace iabn
