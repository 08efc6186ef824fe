#include "validate.h"

#include "device.h"
#include "kernels.h"
#include "names.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>

namespace iabn::detail {
namespace {

// The smallest normal number of the per-channel dtype: the floor of epsilon (1/sqrt(epsilon)
// stays finite) and of a backward's effective scale (1/g stays finite).
double smallest_normal(DType channel_dtype) {
    return channel_dtype == DType::f64 ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
}

// The byte size of a shape of positive dims, or nothing when it does not fit in 63 bits.
std::optional<int64_t> checked_bytes(const std::vector<int64_t>& shape, DType dtype) {
    int64_t bytes = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t d : shape) {
        if (__builtin_mul_overflow(bytes, d, &bytes)) return std::nullopt;
    }
    return bytes;
}

// A buffer the call reads or writes, as a range of addresses (integers: comparing pointers into
// different objects with < is undefined).
struct Span {
    std::string name;
    uintptr_t begin, end;
    bool written;
};

// Messages read "iabn::<function>: <argument>: expected <what>, got <what>".
class Checker {
public:
    explicit Checker(const char* function) : function_(function) {}

    [[noreturn]] void fail(const std::string& argument, const std::string& expected, const std::string& got) const {
        throw InvalidArgument(std::string("iabn::") + function_ + ": " + argument + ": expected " + expected + ", got " + got);
    }

    // Everything in Options but epsilon, whose floor depends on the dtype (epsilon() below).
    void options(const Options& o) const {
        const int act = static_cast<int>(o.activation);
        if (act < 0 || act >= kActivationCount) {
            fail("options.activation", activation_names(), "enum value " + std::to_string(act));
        }
        if (o.activation != Activation::identity && !(std::isfinite(o.activation_param) && o.activation_param > 0)) {
            fail("options.activation_param", std::string("a finite value > 0 for ") + to_string(o.activation) +
                                                 " (0 would make leaky_relu a relu, which is not invertible)",
                 number(o.activation_param));
        }
        if (!(o.momentum >= 0 && o.momentum <= 1)) fail("options.momentum", "a value in [0, 1]", number(o.momentum));
        if (o.layout != Layout::nchw && o.layout != Layout::nhwc) {
            fail("options.layout", "nchw or nhwc", "enum value " + std::to_string(static_cast<int>(o.layout)));
        }
    }

    // epsilon between the smallest normal and the largest finite number of the per-channel dtype:
    // 0 would divide by zero on a constant channel (variance 0), a subnormal epsilon would make
    // 1/sqrt(epsilon) overflow, and one beyond the dtype's range would make |weight| + epsilon
    // (abs_weight) infinite in it.
    void epsilon(const Options& o, DType channel_dtype) const {
        const double floor = smallest_normal(channel_dtype);
        const double ceiling = channel_dtype == DType::f64 ? std::numeric_limits<double>::max()
                                                           : std::numeric_limits<float>::max();
        if (!(o.epsilon >= floor && o.epsilon <= ceiling)) {
            fail("options.epsilon",
                 "a value in [" + number(floor) + ", " + number(ceiling) + "] (the normal " +
                     to_string(channel_dtype) + " range; 0 would divide by zero on a constant channel)",
                 number(o.epsilon));
        }
    }

    // The activation tensor (x, z or dz); returns its view. Every buffer of the call must be on
    // the device of the first tensor checked.
    View tensor(const TensorRef& t, const std::string& name, Layout layout, bool written) {
        if (t.device != Device::cpu && t.device != Device::cuda && t.device != Device::opencl) {
            fail(name + ".device", "Device::cpu, Device::cuda or Device::opencl",
                 "enum value " + std::to_string(static_cast<int>(t.device)));
        }
        if (!device_built(t.device)) {
            fail(name, "a device this build of iabn has kernels for",
                 std::string(device_name(t.device)) + " (" + not_built(t.device) + ")");
        }
        same_device(t, name);
        if (!t.data) fail(name, "a data pointer", "nullptr");
        const size_t rank = t.shape.size();
        if (rank < 2 || rank > 5) fail(name, "rank 2..5", "rank " + std::to_string(rank) + " " + shape(t.shape));
        for (int64_t d : t.shape) {
            if (d <= 0) fail(name, "every dimension > 0", "shape " + shape(t.shape));
        }
        const int dt = static_cast<int>(t.dtype);
        if (dt < static_cast<int>(DType::f16) || dt > static_cast<int>(DType::f64)) {
            fail(name + ".dtype", "f16, bf16, f32 or f64", "enum value " + std::to_string(dt));
        }
        // (whether this build has kernels for it: kernels_for(), at the end of the checks)
        const std::optional<int64_t> bytes = checked_bytes(t.shape, t.dtype);
        if (!bytes) fail(name, "a tensor of fewer than 2^63 bytes", "shape " + shape(t.shape));
        aligned(t, name);
        const View v = make_view(t.shape, layout);
        const int64_t limit = std::numeric_limits<int32_t>::max();
        for (int64_t e : {v.s, v.c, v.n, v.stride_s, v.stride_c, v.stride_n}) {
            if (e > limit) fail(name, "every view extent and stride < 2^31 elements", "shape " + shape(t.shape));
        }
        // The GPU reductions index a channel's elements in one 32-bit loop.
        if (t.device != Device::cpu && v.per_channel() > limit) {
            fail(name, "at most 2^31 - 1 elements per channel on a GPU", "shape " + shape(t.shape));
        }
        add_span(t, name, *bytes, written);
        return v;
    }

    // A per-channel buffer: required ones must have data; any given one must be [C] of `dtype`.
    // `used`: the call reads or writes it (else it is only checked, e.g. saved_mean in a
    // global-statistics forward, which ignores it).
    void channel(const TensorRef& t, const std::string& name, int64_t channels, DType dtype, bool required,
                 bool written, bool used = true) {
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
        aligned(t, name);
        if (used) add_span(t, name, channels * static_cast<int64_t>(dtype_size(dtype)), written);
    }

    void enough_elements(const View& v, const std::string& name) const {
        if (v.per_channel() < 2) {
            fail(name, "at least 2 elements per channel for batch statistics",
                 std::to_string(v.per_channel()) + " (use global statistics, or a larger batch)");
        }
    }

    // The synchronized passes exchange batch statistics: they need them.
    void batch_statistics(const Options& o) const {
        if (!uses_batch_stats(o)) {
            fail("options", "batch statistics (training && !use_global_stats): a synchronized pass exchanges them",
                 o.training ? "use_global_stats == true" : "training == false");
        }
    }

    // A synchronized pass's f64 partials: [2C + 1] (`gathered` false) or every process's,
    // [P, 2C + 1] (`gathered` true). Returns P (1 for partials).
    int64_t sync_buffer(const TensorRef& t, const std::string& name, int64_t channels, bool gathered, bool written) {
        const int64_t width = sync_partials_size(channels);
        const std::string w = std::to_string(width);
        if (!t.data) fail(name, "a data pointer", "nullptr");
        same_device(t, name);
        const bool ok = gathered ? t.shape.size() == 2 && t.shape[0] >= 1 && t.shape[1] == width
                                 : t.shape == std::vector<int64_t>{width};
        if (!ok) {
            fail(name,
                 gathered ? "shape [P, " + w + "]: the partials of P >= 1 processes, one row each (2C + 1 values)"
                          : "shape [" + w + "] (2C + 1 values for " + std::to_string(channels) + " channels)",
                 "shape " + shape(t.shape));
        }
        if (t.dtype != DType::f64) {
            fail(name + ".dtype", "f64 (partials are exchanged in f64 whatever the tensor's dtype)", to_string(t.dtype));
        }
        const int64_t rows = gathered ? t.shape[0] : 1;
        // (the kernels index the gathered rows with 32-bit strides)
        if (rows > std::numeric_limits<int32_t>::max() / width) {
            fail(name, "fewer than 2^31 values in all", "shape " + shape(t.shape));
        }
        aligned(t, name);
        add_span(t, name, rows * width * static_cast<int64_t>(sizeof(double)), written);
        return rows;
    }

    // No buffer the call writes may share a byte with another buffer of the call: the kernels
    // would read values they have already overwritten (or write one result over another).
    void no_overlap() const {
        for (const Span& w : spans_) {
            if (!w.written) continue;
            for (const Span& o : spans_) {
                if (&o == &w || !(w.begin < o.end && o.begin < w.end)) continue;
                fail(w.name, "memory that overlaps no other buffer of the call (" + w.name + " is written)",
                     "an overlap with " + o.name);
            }
        }
    }

    // Binds the call to its device's context and queue, from the options (the backend throws if
    // there are none), then checks that every buffer of the call is memory its kernels can use.
    void begin(Call& call, const Options& o) const {
        const DeviceBackend* device = device_backend(call.device());
        if (!device) return;
        device->begin(call, o);
        for (const Span& s : spans_) {
            const std::string why = device->foreign(call, reinterpret_cast<const void*>(s.begin));
            if (!why.empty()) fail(s.name, std::string("memory of the call's ") + device->name() + " context", why);
        }
    }

    void same_device(const TensorRef& t, const std::string& name) {
        if (!device_) {
            device_ = t.device;
        } else if (t.device != *device_) {
            fail(name + ".device", std::string("the device of the tensor, ") + device_name(*device_),
                 std::string(device_name(t.device)) + " (every buffer of a call is on one device)");
        }
    }

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
    // Host and CUDA data pointers are addresses; an OpenCL cl_mem is an opaque handle.
    bool addresses() const { return !device_ || *device_ != Device::opencl; }

    // The kernels load and store whole elements: a pointer must be a multiple of the element size.
    void aligned(const TensorRef& t, const std::string& name) const {
        if (!addresses()) return;
        const uintptr_t address = reinterpret_cast<uintptr_t>(t.data);
        const size_t size = dtype_size(t.dtype);
        if (address % size != 0) {
            std::ostringstream got;
            got << "address " << t.data;
            fail(name, "a data pointer aligned to " + std::to_string(size) + " bytes (one " + to_string(t.dtype) + ")",
                 got.str());
        }
    }

    // (Two cl_mem handles are the same memory only if they are equal: a handle is a span of 1.)
    void add_span(const TensorRef& t, const std::string& name, int64_t bytes, bool written) {
        const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data);
        spans_.push_back({name, begin, begin + (addresses() ? static_cast<uintptr_t>(bytes) : 1), written});
    }

    const char* function_;
    std::optional<Device> device_;  // of the first buffer checked
    std::vector<Span> spans_;       // of the buffers the call reads or writes
};

// The values of a [C] buffer as doubles; a device buffer is copied to the host first (after the
// work enqueued before the call: this waits for the device).
std::vector<double> channel_values(const TensorRef& t, int64_t channels, Call& call) {
    std::vector<unsigned char> device_copy;
    const void* data = t.data;
    if (const DeviceBackend* device = device_backend(t.device)) {
        device_copy.resize(static_cast<size_t>(channels) * dtype_size(t.dtype));
        device->read(call, device_copy.data(), t.data, device_copy.size());
        data = device_copy.data();
    }
    std::vector<double> out(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; c++) {
        out[c] = t.dtype == DType::f64 ? static_cast<const double*>(data)[c]
                                       : static_cast<double>(static_cast<const float*>(data)[c]);
    }
    return out;
}

// Whether the values of `t` are checked: always on the host; on a device, where the caller wants
// the wait (Options::check_device_values).
bool values_checked(const TensorRef& t, const Options& o) { return t.device == Device::cpu || o.check_device_values; }

// Global statistics normalize with 1/sqrt(running_var + epsilon): a negative (or NaN) running
// variance would give NaN from finite input.
void check_running_var(const Checker& check, const TensorRef& running_var, int64_t channels, Call& call) {
    const std::vector<double> v = channel_values(running_var, channels, call);
    for (size_t c = 0; c < v.size(); c++) {
        if (!(v[c] >= 0)) {
            check.fail("running_var", "a variance >= 0 in every channel (global statistics normalize with it)",
                       Checker::number(v[c]) + " at channel " + std::to_string(c));
        }
    }
}

// The backward recovers xhat = (y - b) * (1/g): g must be non-zero, and normal so that 1/g is finite.
void check_backward_scale(const Checker& check, const TensorRef& weight, int64_t channels, DType channel_dtype,
                          const Options& o, Call& call) {
    const std::vector<double> w = channel_values(weight, channels, call);
    const double floor = smallest_normal(channel_dtype);
    for (size_t c = 0; c < w.size(); c++) {
        const double g = o.abs_weight ? std::abs(w[c]) + o.epsilon : w[c];
        if (!(std::abs(g) >= floor)) {
            check.fail("weight",
                       "an effective scale of magnitude >= " + Checker::number(floor) +
                           " in every channel (backward multiplies by its reciprocal, which must be finite)",
                       Checker::number(g) + " at channel " + std::to_string(c));
        }
    }
}

// Column 0 of each gathered row is a process's elements per channel: an integer >= 1 (exact in
// f64 up to 2^53), one of them this tensor's own, and at least 2 in all (a variance needs 2).
void check_gathered_counts(const Checker& check, const TensorRef& gathered, const View& v, int64_t rows, Call& call) {
    const int64_t width = sync_partials_size(v.c);
    std::vector<double> values(static_cast<size_t>(rows * width));
    if (const DeviceBackend* device = device_backend(gathered.device)) {
        device->read(call, values.data(), gathered.data, values.size() * sizeof(double));
    } else {
        std::copy_n(static_cast<const double*>(gathered.data), values.size(), values.data());
    }
    double total = 0;
    bool own = false;
    for (int64_t p = 0; p < rows; p++) {
        const double n = values[static_cast<size_t>(p * width)];
        if (!(n >= 1 && n <= 0x1p53 && n == std::floor(n))) {
            check.fail("gathered", "an element count per channel (an integer >= 1) in column 0 of every row",
                       Checker::number(n) + " in row " + std::to_string(p));
        }
        total += n;
        own = own || n == static_cast<double>(v.per_channel());
    }
    if (!own) {
        check.fail("gathered", "a row with this tensor's count, " + std::to_string(v.per_channel()) +
                                   " elements per channel (the rows are every process's partials of this layer)",
                   "none");
    }
    if (total < 2) {
        check.fail("gathered", "at least 2 elements per channel across processes for batch statistics",
                   Checker::number(total));
    }
}

}  // namespace

bool uses_batch_stats(const Options& o) { return o.training && !o.use_global_stats; }

DType channel_dtype_for(DType tensor_dtype) { return tensor_dtype == DType::f64 ? DType::f64 : DType::f32; }


namespace {

// The per-channel buffers of a forward (forward, forward_finish).
void check_forward_state(Checker& check, const View& v, const ChannelState& s, const Options& o, bool batch,
                         DType cd) {
    check.epsilon(o, cd);
    check.channel(s.weight, "weight", v.c, cd, false, false);
    check.channel(s.bias, "bias", v.c, cd, false, false);
    check.channel(s.running_mean, "running_mean", v.c, cd, true, batch);
    check.channel(s.running_var, "running_var", v.c, cd, true, batch);
    check.channel(s.saved_mean, "saved_mean", v.c, cd, batch, batch, batch);
    check.channel(s.saved_invstd, "saved_invstd", v.c, cd, batch, batch, batch);
}

// Which buffers a backward reads and writes: backward() and backward_finish() write dz and need
// the normalizing statistics; backward_partials() reads dz, needs no statistics and writes the
// parameter gradients.
struct BackwardUse {
    bool dz_written, statistics, grads;
};

View check_backward_buffers(Checker& check, const TensorRef& z, const TensorRef& dz, const ChannelState& s,
                            const ParamGrads& g, const Options& o, bool batch, DType cd, BackwardUse use) {
    const View v = check.tensor(z, "z", o.layout, false);
    check.tensor(dz, "dz", o.layout, use.dz_written);
    if (dz.shape != z.shape) check.fail("dz", "the shape of z " + Checker::shape(z.shape), Checker::shape(dz.shape));
    if (dz.dtype != z.dtype) check.fail("dz.dtype", std::string("the dtype of z, ") + to_string(z.dtype), to_string(dz.dtype));
    check.epsilon(o, cd);
    check.channel(s.weight, "weight", v.c, cd, false, false);
    check.channel(s.bias, "bias", v.c, cd, false, false);
    const bool stats = use.statistics;
    check.channel(s.saved_invstd, "saved_invstd", v.c, cd, stats && batch, false, stats && batch);
    check.channel(s.running_var, "running_var", v.c, cd, stats && !batch, false, stats && !batch);
    if (use.grads) {
        check.channel(g.weight_grad, "weight_grad", v.c, cd, false, true);
        check.channel(g.bias_grad, "bias_grad", v.c, cd, false, true);
    }
    return v;
}

}  // namespace

Checked validate_forward(const TensorRef& x, const ChannelState& s, const Options& o, Call& call) {
    Checker check("forward");
    check.options(o);
    const View v = check.tensor(x, "x", o.layout, true);
    const bool batch = uses_batch_stats(o);
    const DType cd = channel_dtype_for(x.dtype);
    check_forward_state(check, v, s, o, batch, cd);
    if (batch) check.enough_elements(v, "x");
    check.no_overlap();
    const Kernels& kernels = kernels_for(x.dtype, v.kernel_layout, x.device);
    check.begin(call, o);
    if (!batch && values_checked(s.running_var, o)) check_running_var(check, s.running_var, v.c, call);
    return {v, batch, cd, 1, &kernels};
}

Checked validate_backward(const TensorRef& z, const TensorRef& dz, const ChannelState& s, const ParamGrads& g,
                          const Options& o, Call& call) {
    Checker check("backward");
    check.options(o);
    const bool batch = uses_batch_stats(o);
    const DType cd = channel_dtype_for(z.dtype);
    const View v = check_backward_buffers(check, z, dz, s, g, o, batch, cd, {true, true, true});
    if (batch) check.enough_elements(v, "z");
    check.no_overlap();
    const Kernels& kernels = kernels_for(z.dtype, v.kernel_layout, z.device);
    check.begin(call, o);
    if (!batch && values_checked(s.running_var, o)) check_running_var(check, s.running_var, v.c, call);
    if (s.weight.data && values_checked(s.weight, o)) check_backward_scale(check, s.weight, v.c, cd, o, call);
    // (a missing weight means g = 1)
    return {v, batch, cd, 1, &kernels};
}

Checked validate_forward_partials(const TensorRef& x, const TensorRef& partials, const Options& o, Call& call) {
    Checker check("forward_partials");
    check.options(o);
    check.batch_statistics(o);
    const View v = check.tensor(x, "x", o.layout, false);
    check.sync_buffer(partials, "partials", v.c, false, true);
    check.no_overlap();
    const Kernels& kernels = kernels_for(x.dtype, v.kernel_layout, x.device);
    check.begin(call, o);
    return {v, true, channel_dtype_for(x.dtype), 1, &kernels};
}

Checked validate_forward_finish(const TensorRef& x, const ChannelState& s, const TensorRef& gathered,
                                const Options& o, Call& call) {
    Checker check("forward_finish");
    check.options(o);
    check.batch_statistics(o);
    const View v = check.tensor(x, "x", o.layout, true);
    const DType cd = channel_dtype_for(x.dtype);
    check_forward_state(check, v, s, o, true, cd);
    const int64_t rows = check.sync_buffer(gathered, "gathered", v.c, true, false);
    check.no_overlap();
    const Kernels& kernels = kernels_for(x.dtype, v.kernel_layout, x.device);
    check.begin(call, o);
    if (values_checked(gathered, o)) check_gathered_counts(check, gathered, v, rows, call);
    return {v, true, cd, rows, &kernels};
}

Checked validate_backward_partials(const TensorRef& z, const TensorRef& dz, const ChannelState& s,
                                   const ParamGrads& g, const TensorRef& partials, const Options& o, Call& call) {
    Checker check("backward_partials");
    check.options(o);
    check.batch_statistics(o);
    const DType cd = channel_dtype_for(z.dtype);
    const View v = check_backward_buffers(check, z, dz, s, g, o, true, cd, {false, false, true});
    check.sync_buffer(partials, "partials", v.c, false, true);
    check.no_overlap();
    const Kernels& kernels = kernels_for(z.dtype, v.kernel_layout, z.device);
    check.begin(call, o);
    if (s.weight.data && values_checked(s.weight, o)) check_backward_scale(check, s.weight, v.c, cd, o, call);
    return {v, true, cd, 1, &kernels};
}

Checked validate_backward_finish(const TensorRef& z, const TensorRef& dz, const ChannelState& s,
                                 const TensorRef& gathered, const Options& o, Call& call) {
    Checker check("backward_finish");
    check.options(o);
    check.batch_statistics(o);
    const DType cd = channel_dtype_for(z.dtype);
    const View v = check_backward_buffers(check, z, dz, s, ParamGrads{}, o, true, cd, {true, true, false});
    const int64_t rows = check.sync_buffer(gathered, "gathered", v.c, true, false);
    check.no_overlap();
    const Kernels& kernels = kernels_for(z.dtype, v.kernel_layout, z.device);
    check.begin(call, o);
    if (values_checked(gathered, o)) check_gathered_counts(check, gathered, v, rows, call);
    if (s.weight.data && values_checked(s.weight, o)) check_backward_scale(check, s.weight, v.c, cd, o, call);
    return {v, true, cd, rows, &kernels};
}

}  // namespace iabn::detail
