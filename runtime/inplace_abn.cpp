// iabn::InPlaceABN: owns the per-channel state and forwards to iabn::forward / iabn::backward.
#include "iabn/iabn.h"

#include "validate.h"

namespace iabn {

InPlaceABN::InPlaceABN(int64_t channels, const Options& options, DType dtype)
    : channels_(channels), dtype_(dtype), options_(options) {
    if (channels < 1) throw Error("iabn::InPlaceABN: channels: expected >= 1, got " + std::to_string(channels));
    state_.weight = channel_buffer(1.0);
    state_.bias = channel_buffer(0.0);
    state_.running_mean = channel_buffer(0.0);
    state_.running_var = channel_buffer(1.0);
    state_.saved_mean = channel_buffer(0.0);
    state_.saved_invstd = channel_buffer(0.0);
    grads_.weight_grad = channel_buffer(0.0);
    grads_.bias_grad = channel_buffer(0.0);
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
        throw Error("iabn::InPlaceABN: values: expected " + std::to_string(channels_) + " values, got " +
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
