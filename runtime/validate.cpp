#include "validate.h"

#include "cuda.h"
#include "kernels.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>

namespace iabn::detail {
namespace {

// Messages read "iabn::<function>: <argument>: expected <what>, got <what>".
class Checker {
public:
    explicit Checker(const char* function) : function_(function) {}

    [[noreturn]] void fail(const std::string& argument, const std::string& expected, const std::string& got) const {
        throw Error(std::string("iabn::") + function_ + ": " + argument + ": expected " + expected + ", got " + got);
    }

    void options(const Options& o) const {
        const int act = static_cast<int>(o.activation);
        if (act < 0 || act > static_cast<int>(Activation::elu)) {
            fail("options.activation", "identity, leaky_relu or elu", "enum value " + std::to_string(act));
        }
        if (o.activation != Activation::identity && !(std::isfinite(o.activation_param) && o.activation_param > 0)) {
            fail("options.activation_param", std::string("a finite value > 0 for ") + to_string(o.activation) +
                                                 " (0 would make leaky_relu a relu, which is not invertible)",
                 number(o.activation_param));
        }
        if (!(std::isfinite(o.epsilon) && o.epsilon >= 0)) fail("options.epsilon", "a finite value >= 0", number(o.epsilon));
        if (!(o.momentum >= 0 && o.momentum <= 1)) fail("options.momentum", "a value in [0, 1]", number(o.momentum));
        if (o.layout != Layout::nchw && o.layout != Layout::nhwc) {
            fail("options.layout", "nchw or nhwc", "enum value " + std::to_string(static_cast<int>(o.layout)));
        }
    }

    // The activation tensor (x, z or dz); returns its view. Every buffer of the call must be on
    // the device of the first tensor checked.
    View tensor(const TensorRef& t, const std::string& name, Layout layout) {
        if (t.device != Device::cpu && t.device != Device::cuda) {
            fail(name + ".device", "Device::cpu or Device::cuda", "enum value " + std::to_string(static_cast<int>(t.device)));
        }
        if (t.device == Device::cuda && !cuda_built()) {
            fail(name, "a host tensor (Device::cpu)", "Device::cuda: this build of iabn has no CUDA kernels (IABN_CUDA=OFF)");
        }
        same_device(t, name);
        if (!t.data) fail(name, "a data pointer", "nullptr");
        const size_t rank = t.shape.size();
        if (rank < 2 || rank > 5) fail(name, "rank 2..5", "rank " + std::to_string(rank) + " " + shape(t.shape));
        for (int64_t d : t.shape) {
            if (d <= 0) fail(name, "every dimension > 0", "shape " + shape(t.shape));
        }
        if (t.dtype != DType::f32 && t.dtype != DType::f64) {
            fail(name + ".dtype", "f32 or f64 (f16 and bf16 are not built yet)", to_string(t.dtype));
        }
        const View v = make_view(t.shape, layout);
        const int64_t limit = std::numeric_limits<int32_t>::max();
        for (int64_t e : {v.s, v.c, v.n, v.stride_s, v.stride_c, v.stride_n}) {
            if (e > limit) fail(name, "every view extent and stride < 2^31 elements", "shape " + shape(t.shape));
        }
        return v;
    }

    // A per-channel buffer: required ones must have data; any given one must be [C] of `dtype`.
    void channel(const TensorRef& t, const std::string& name, int64_t channels, DType dtype, bool required) {
        if (!t.data) {
            if (required) fail(name, "a data pointer to " + std::to_string(channels) + " values", "nullptr");
            return;
        }
        same_device(t, name);
        if (t.shape != std::vector<int64_t>{channels}) {
            fail(name, "shape [" + std::to_string(channels) + "] (one value per channel)", "shape " + shape(t.shape));
        }
        if (t.dtype != dtype) {
            fail(name + ".dtype", std::string(to_string(dtype)) + " (per-channel buffers are f64 for f64 tensors, f32 otherwise)",
                 to_string(t.dtype));
        }
    }

    void enough_elements(const View& v, const std::string& name) const {
        if (v.per_channel() < 2) {
            fail(name, "at least 2 elements per channel for batch statistics",
                 std::to_string(v.per_channel()) + " (use global statistics, or a larger batch)");
        }
    }

    void same_device(const TensorRef& t, const std::string& name) {
        if (!device_) {
            device_ = t.device;
        } else if (t.device != *device_) {
            fail(name + ".device", std::string("the device of the tensor, ") + device_name(*device_),
                 device_name(t.device) + " (every buffer of a call is on one device)");
        }
    }

    static std::string device_name(Device d) { return d == Device::cuda ? "Device::cuda" : "Device::cpu"; }

    static std::string shape(const std::vector<int64_t>& s) {
        std::ostringstream out;
        out << "[";
        for (size_t i = 0; i < s.size(); i++) out << (i ? ", " : "") << s[i];
        out << "]";
        return out.str();
    }

    static std::string number(double v) {
        std::ostringstream out;
        out << v;
        return out.str();
    }

private:
    const char* function_;
    std::optional<Device> device_;  // of the first buffer checked
};

size_t byte_size(const TensorRef& t) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    return n;
}

void check_nonzero_scale(const Checker& check, const std::vector<double>& w, const Options& o) {
    for (size_t c = 0; c < w.size(); c++) {
        const double g = o.abs_weight ? std::abs(w[c]) + o.epsilon : w[c];
        if (g == 0) {
            check.fail("weight", "a non-zero effective scale in every channel (backward divides by it)",
                       "0 at channel " + std::to_string(c));
        }
    }
}

}  // namespace

bool uses_batch_stats(const Options& o) { return o.training && !o.use_global_stats; }

DType channel_dtype_for(DType tensor_dtype) { return tensor_dtype == DType::f64 ? DType::f64 : DType::f32; }

// The values of a [C] buffer as doubles; a Device::cuda buffer is copied to the host first.
std::vector<double> channel_values(const TensorRef& t, int64_t channels, const Options& o) {
    std::vector<unsigned char> device_copy;
    const void* data = t.data;
    if (t.device == Device::cuda) {
        device_copy.resize(byte_size(t));
        copy_to_host(device_copy.data(), t.data, device_copy.size(), o.cuda_stream);
        data = device_copy.data();
    }
    std::vector<double> out(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; c++) {
        out[c] = t.dtype == DType::f64 ? static_cast<const double*>(data)[c]
                                       : static_cast<double>(static_cast<const float*>(data)[c]);
    }
    return out;
}

Checked validate_forward(const TensorRef& x, const ChannelState& s, const Options& o) {
    Checker check("forward");
    check.options(o);
    const View v = check.tensor(x, "x", o.layout);
    const bool batch = uses_batch_stats(o);
    const DType cd = channel_dtype_for(x.dtype);
    check.channel(s.weight, "weight", v.c, cd, false);
    check.channel(s.bias, "bias", v.c, cd, false);
    check.channel(s.running_mean, "running_mean", v.c, cd, true);
    check.channel(s.running_var, "running_var", v.c, cd, true);
    check.channel(s.saved_mean, "saved_mean", v.c, cd, batch);
    check.channel(s.saved_invstd, "saved_invstd", v.c, cd, batch);
    if (batch) check.enough_elements(v, "x");
    kernels_for(x.dtype, v.kernel_layout, x.device);
    return {v, batch, cd};
}

Checked validate_backward(const TensorRef& z, const TensorRef& dz, const ChannelState& s, const ParamGrads& g,
                          const Options& o) {
    Checker check("backward");
    check.options(o);
    const View v = check.tensor(z, "z", o.layout);
    check.tensor(dz, "dz", o.layout);
    if (dz.shape != z.shape) check.fail("dz", "the shape of z " + Checker::shape(z.shape), Checker::shape(dz.shape));
    if (dz.dtype != z.dtype) check.fail("dz.dtype", std::string("the dtype of z, ") + to_string(z.dtype), to_string(dz.dtype));
    const auto* zb = static_cast<const unsigned char*>(z.data);
    const auto* db = static_cast<const unsigned char*>(dz.data);
    if (zb < db + byte_size(dz) && db < zb + byte_size(z)) {
        check.fail("dz", "memory that does not overlap z (dx is written over dz while z is read)", "overlapping buffers");
    }
    const bool batch = uses_batch_stats(o);
    const DType cd = channel_dtype_for(z.dtype);
    check.channel(s.weight, "weight", v.c, cd, false);
    check.channel(s.bias, "bias", v.c, cd, false);
    check.channel(s.saved_invstd, "saved_invstd", v.c, cd, batch);
    check.channel(s.running_var, "running_var", v.c, cd, !batch);
    check.channel(g.weight_grad, "weight_grad", v.c, cd, false);
    check.channel(g.bias_grad, "bias_grad", v.c, cd, false);
    if (batch) check.enough_elements(v, "z");
    kernels_for(z.dtype, v.kernel_layout, z.device);
    if (s.weight.data) check_nonzero_scale(check, channel_values(s.weight, v.c, o), o);
    // (a missing weight means g = 1: never 0)
    return {v, batch, cd};
}

}  // namespace iabn::detail
