#include "measure.h"

#include "half.h"        // tests/support/half.h: 16-bit values read back
#include "value_pool.h"  // bench/value_pool.h: the tensors' values

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

namespace iabn_tune_gpu {

namespace {
// As the GPU benchmark: weight 1 and bias 5 keep repeated forwards and backwards finite and
// their per-channel scale 1 (bench/gpu/iabn_bench_gpu.cpp, kWeight and kBias).
constexpr float kWeight = 1.0f, kBias = 5.0f;

double element(iabn::DType dtype, const unsigned char* p, int64_t i) {
    switch (dtype) {
        case iabn::DType::f32: { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
        case iabn::DType::f64: { double v; std::memcpy(&v, p + 8 * i, 8); return v; }
        default: {
            uint16_t h;
            std::memcpy(&h, p + 2 * i, 2);
            return iabn_test::from_bits(dtype == iabn::DType::f16 ? iabn_test::kF16 : iabn_test::kBF16, h);
        }
    }
}
}  // namespace

PassBench::PassBench(iabn_test::TestDevice& device, const Dims& nchw, iabn::DType dtype, iabn::Layout layout)
    : device_(device), dtype_(dtype), c_(nchw.at(1)) {
    shape_ = layout == iabn::Layout::nchw ? nchw : Dims{nchw[0], nchw[2], nchw[3], nchw[1]};
    n_ = 1;
    for (int64_t d : nchw) n_ *= d;
    static const bench::ValuePool x_values(0.5f, 2.0f, 1), dz_values(0.0f, 1.0f, 2);
    x_host_ = x_values.values(dtype, n_);
    dz_host_ = dz_values.values(dtype, n_);
    x_ = alloc(x_host_.size());
    dz_ = alloc(dz_host_.size());
    device_.upload(x_, x_host_.data(), x_host_.size());
    device_.upload(dz_, dz_host_.data(), dz_host_.size());
    state_ = {channel(kWeight), channel(kBias), channel(0), channel(1), channel(0), channel(0)};
    grads_ = {channel(0), channel(0)};
    options_.activation = iabn::Activation::leaky_relu;
    options_.activation_param = 0.01;
    options_.layout = layout;
    options_.check_device_values = false;  // no host wait inside a timed call (as the benchmark)
    device_.set_queue(options_, device_.default_queue());
    // Two forwards: the second normalizes the first's output (invstd 1), as every later call does.
    forward();
    forward();
    device_.synchronize(device_.default_queue());
}

PassBench::~PassBench() {
    try {
        device_.synchronize(device_.default_queue());
        for (void* p : owned_) device_.free(p);
    } catch (...) {
        // The error on its way (if any) says what went wrong; a failed release says nothing more.
    }
}

void* PassBench::alloc(size_t bytes) {
    void* p = device_.alloc(bytes);
    owned_.push_back(p);
    return p;
}

// Per-channel buffers are f64 for f64 tensors, f32 otherwise (iabn.h, ChannelState).
iabn::TensorRef PassBench::channel(float value) {
    const iabn::DType t = dtype_ == iabn::DType::f64 ? iabn::DType::f64 : iabn::DType::f32;
    std::vector<unsigned char> host(static_cast<size_t>(c_) * iabn::dtype_size(t));
    for (int64_t i = 0; i < c_; i++) {
        if (t == iabn::DType::f64) {
            const double v = value;
            std::memcpy(host.data() + 8 * i, &v, 8);
        } else {
            std::memcpy(host.data() + 4 * i, &value, 4);
        }
    }
    void* p = alloc(host.size());
    device_.upload(p, host.data(), host.size());
    return {p, t, {c_}, device_.device()};
}

void PassBench::forward() { iabn::forward({x_, dtype_, shape_, device_.device()}, state_, options_); }

void PassBench::backward() {
    iabn::backward({x_, dtype_, shape_, device_.device()}, {dz_, dtype_, shape_, device_.device()}, state_, grads_,
                   options_);
}

double PassBench::time(Pass pass, int calls) {
    void* queue = device_.default_queue();
    device_.synchronize(queue);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; i++) pass == Pass::forward ? forward() : backward();
    device_.synchronize(queue);
    const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
    return ms.count() / calls;
}

std::vector<double> PassBench::outputs(Pass pass) {
    device_.upload(x_, x_host_.data(), x_host_.size());
    device_.upload(dz_, dz_host_.data(), dz_host_.size());
    forward();
    if (pass == Pass::backward) backward();
    device_.synchronize(device_.default_queue());
    std::vector<double> out;
    auto read = [&](void* memory, iabn::DType dtype, int64_t n) {
        std::vector<unsigned char> host(static_cast<size_t>(n) * iabn::dtype_size(dtype));
        device_.download(host.data(), memory, host.size());
        for (int64_t i = 0; i < n; i++) out.push_back(element(dtype, host.data(), i));
    };
    if (pass == Pass::forward) {
        read(x_, dtype_, n_);
        read(state_.saved_mean.data, state_.saved_mean.dtype, c_);
        read(state_.saved_invstd.data, state_.saved_invstd.dtype, c_);
    } else {
        read(dz_, dtype_, n_);
        read(grads_.weight_grad.data, grads_.weight_grad.dtype, c_);
        read(grads_.bias_grad.data, grads_.bias_grad.dtype, c_);
    }
    return out;
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::infinity();
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        norm += b[i] * b[i];
    }
    return diff == 0 ? 0 : std::sqrt(diff / norm);
}

double tolerance(iabn::DType dtype) {
    switch (dtype) {
        case iabn::DType::f64: return 4 * std::ldexp(1.0, -53);
        case iabn::DType::f32: return 4 * std::ldexp(1.0, -24);
        case iabn::DType::f16: return 4 * std::ldexp(1.0, -11);
        default: return 4 * std::ldexp(1.0, -8);  // bf16
    }
}

}  // namespace iabn_tune_gpu
