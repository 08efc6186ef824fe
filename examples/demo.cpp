// iabn_demo: one training forward + backward on an embedded default shape, with what a person
// needs to judge the result: the dispatched target, the error against a float64 reference, the
// times and bandwidth, and the memory a framework keeps between the passes.
//
//   iabn_demo [--shape 32,64,56,56] [--layout nchw|nhwc] [--dtype f32|f64|f16|bf16]
//             [--activation leaky_relu] [--param 0.01] [--threads N] [--repeats 7]
//
// f16 and bf16 tensors hold 16-bit floats, which C++17 has no type for: the demo stores their bits
// in uint16_t and converts with the four small functions below.
#include "demo_check.h"

#include <iabn/iabn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Config {
    std::vector<int64_t> shape = {32, 64, 56, 56};
    iabn::Layout layout = iabn::Layout::nchw;
    iabn::DType dtype = iabn::DType::f32;
    iabn::Activation activation = iabn::Activation::leaky_relu;
    double param = 0.01;
    int threads = 0;  // 0: Halide's default, one per core
    int repeats = 7;
};

[[noreturn]] void usage(const char* error) {
    if (error) std::fprintf(stderr, "iabn_demo: %s\n", error);
    std::fprintf(stderr,
                 "usage: iabn_demo [--shape 32,64,56,56] [--layout nchw|nhwc] [--dtype f32|f64|f16|bf16]\n"
                 "                 [--activation identity|leaky_relu|elu] [--param 0.01] [--threads N] [--repeats 7]\n");
    std::exit(error ? 2 : 0);
}

Config parse(int argc, char** argv) {
    Config c;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") usage(nullptr);
        if (i + 1 >= argc) usage(("missing value after " + a).c_str());
        const std::string v = argv[++i];
        if (a == "--shape") {
            c.shape.clear();
            std::stringstream in(v);
            for (std::string d; std::getline(in, d, ',');) c.shape.push_back(std::stoll(d));
        } else if (a == "--layout") {
            if (v != "nchw" && v != "nhwc") usage("--layout takes nchw or nhwc");
            c.layout = v == "nchw" ? iabn::Layout::nchw : iabn::Layout::nhwc;
        } else if (a == "--dtype") {
            if (v == "f32") c.dtype = iabn::DType::f32;
            else if (v == "f64") c.dtype = iabn::DType::f64;
            else if (v == "f16") c.dtype = iabn::DType::f16;
            else if (v == "bf16") c.dtype = iabn::DType::bf16;
            else usage("--dtype takes f32, f64, f16 or bf16");
        } else if (a == "--activation") {
            c.activation = iabn::parse_activation(v);
        } else if (a == "--param") {
            c.param = std::stod(v);
        } else if (a == "--threads") {
            c.threads = std::stoi(v);
        } else if (a == "--repeats") {
            c.repeats = std::max(1, std::stoi(v));
        } else {
            usage(("unknown option " + a).c_str());
        }
    }
    return c;
}

// 16-bit floats as iabn stores them: f16 is IEEE binary16 (1 sign, 5 exponent, 10 fraction bits),
// bf16 the upper half of an f32 (1 sign, 8 exponent, 7 fraction bits). From f32 they round to
// nearest, ties to even, as iabn's kernels do; NaN stays NaN.
float bits_as_float(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
uint32_t float_bits(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}

float bf16_to_float(uint16_t h) { return bits_as_float(uint32_t{h} << 16); }

uint16_t float_to_bf16(float v) {
    const uint32_t b = float_bits(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);  // quiet NaN
    // Drop the low 16 bits, rounding: adding 0x7fff, plus 1 when the kept part is odd, carries
    // into the kept part exactly when the dropped part is above half, or half and the kept part odd.
    return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

float f16_to_float(uint16_t h) {
    const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
    const int exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    if (exponent == 0x1f) return std::copysign(fraction ? NAN : INFINITY, sign);
    if (exponent == 0) return sign * std::ldexp(static_cast<float>(fraction), -24);  // subnormal
    return sign * std::ldexp(static_cast<float>(fraction | 0x400), exponent - 25);  // 1.fraction * 2^(exponent - 15)
}

uint16_t float_to_f16(float v) {
    const uint32_t b = float_bits(v), magnitude = b & 0x7fffffffu;
    const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
    if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // quiet NaN
    // From 65520 (halfway between the largest f16, 65504, and 2^16; the tie goes to the even 2^16)
    // up, the result is inf.
    if (magnitude >= 0x477ff000u) return sign | 0x7c00u;
    // Below 2^-14, the smallest normal f16: a subnormal, a count of steps of 2^-24 (nearbyint
    // rounds to nearest, ties to even).
    if (magnitude < 0x38800000u) return sign | static_cast<uint16_t>(std::nearbyint(std::fabs(v) * 0x1p24f));
    // Normal: drop 13 of the 23 fraction bits, rounding as in float_to_bf16 (a carry out of the
    // fraction bumps the exponent, as it should), then rebias the exponent from 127 to 15.
    const uint32_t rounded = (magnitude + 0xfffu + ((magnitude >> 13) & 1u)) >> 13;
    return sign | static_cast<uint16_t>(rounded - ((127u - 15u) << 10));
}

// Tensor storage in the run's dtype, filled from doubles (rounded to the dtype).
struct Tensor {
    iabn::DType dtype;
    std::vector<unsigned char> bytes;
    Tensor(iabn::DType t, size_t n) : dtype(t), bytes(n * iabn::dtype_size(t)) {}
    size_t size() const { return bytes.size() / iabn::dtype_size(dtype); }
    void set(size_t i, double v) {
        switch (dtype) {
            case iabn::DType::f64: reinterpret_cast<double*>(bytes.data())[i] = v; break;
            case iabn::DType::f32: reinterpret_cast<float*>(bytes.data())[i] = static_cast<float>(v); break;
            case iabn::DType::f16: half(i) = float_to_f16(static_cast<float>(v)); break;
            case iabn::DType::bf16: half(i) = float_to_bf16(static_cast<float>(v)); break;
        }
    }
    double get(size_t i) const {
        switch (dtype) {
            case iabn::DType::f64: return reinterpret_cast<const double*>(bytes.data())[i];
            case iabn::DType::f32: return reinterpret_cast<const float*>(bytes.data())[i];
            case iabn::DType::f16: return f16_to_float(half(i));
            case iabn::DType::bf16: return bf16_to_float(half(i));
        }
        return 0;
    }
    uint16_t& half(size_t i) { return reinterpret_cast<uint16_t*>(bytes.data())[i]; }
    uint16_t half(size_t i) const { return reinterpret_cast<const uint16_t*>(bytes.data())[i]; }
    std::vector<double> values() const {
        std::vector<double> v(size());
        for (size_t i = 0; i < v.size(); i++) v[i] = get(i);
        return v;
    }
    iabn::TensorRef ref(const std::vector<int64_t>& shape) { return {bytes.data(), dtype, shape}; }
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

std::string megabytes(double bytes) {
    char buf[32];
    if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
    else std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
    return buf;
}

}  // namespace

int main(int argc, char** argv) try {
    const Config cfg = parse(argc, argv);
    if (cfg.threads > 0) iabn::set_num_threads(cfg.threads);
    size_t numel = 1;
    for (int64_t d : cfg.shape) numel *= static_cast<size_t>(d);
    const int64_t channels = cfg.layout == iabn::Layout::nchw ? cfg.shape.at(1) : cfg.shape.back();
    const size_t bytes = numel * iabn::dtype_size(cfg.dtype);

    // Inputs: each channel with its own mean and spread; weights of both signs.
    std::mt19937_64 rng(std::random_device{}());
    std::normal_distribution<double> normal(0, 1);
    std::vector<double> ch_mean(channels), ch_std(channels);
    for (int64_t c = 0; c < channels; c++) {
        ch_mean[c] = 2 * normal(rng);
        ch_std[c] = 0.5 + std::abs(normal(rng));
    }
    Tensor x0(cfg.dtype, numel), dz0(cfg.dtype, numel);
    for (size_t i = 0; i < numel; i++) {
        const int64_t c = ref::channel_of(static_cast<int64_t>(i), cfg.shape, cfg.layout);
        x0.set(i, ch_mean[c] + ch_std[c] * normal(rng));
        dz0.set(i, normal(rng));
    }
    iabn::Options opt;
    opt.activation = cfg.activation;
    opt.activation_param = cfg.param;
    opt.layout = cfg.layout;
    iabn::InPlaceABN layer(channels, opt, cfg.dtype);
    std::vector<double> weight(channels), bias(channels);
    for (int64_t c = 0; c < channels; c++) {
        weight[c] = (c % 2 ? -1 : 1) * (0.5 + 0.5 * std::abs(normal(rng)));
        bias[c] = 0.2 * normal(rng);
    }
    layer.set_weight(weight);
    layer.set_bias(bias);

    // One checked step: forward then backward, compared with the float64 reference.
    Tensor x = x0, dz = dz0;
    layer.forward(x.ref(cfg.shape));
    const std::vector<double> running_mean = layer.running_mean(), running_var = layer.running_var();
    layer.backward(x.ref(cfg.shape), dz.ref(cfg.shape));
    const demo::Errors err = demo::compare_with_reference(cfg.shape, opt, x0.values(), dz0.values(), weight,
                                                          bias, x.values(), dz.values(), layer, running_mean,
                                                          running_var);

    // Timing: each repeat starts from the original x and dz (the copies are not timed).
    std::vector<double> t_fwd, t_bwd;
    using clock = std::chrono::steady_clock;
    for (int r = 0; r < cfg.repeats + 1; r++) {
        x = x0;
        dz = dz0;
        const auto a = clock::now();
        layer.forward(x.ref(cfg.shape));
        const auto b = clock::now();
        layer.backward(x.ref(cfg.shape), dz.ref(cfg.shape));
        const auto c = clock::now();
        if (r == 0) continue;  // warm-up: thread pool start, page faults
        t_fwd.push_back(std::chrono::duration<double>(b - a).count());
        t_bwd.push_back(std::chrono::duration<double>(c - b).count());
    }
    const double fwd = median(t_fwd), bwd = median(t_bwd);
    const double channel_bytes = 2.0 * channels * iabn::dtype_size(layer.state().saved_invstd.dtype);

    std::printf("iabn demo: InPlace-ABN training step\n");
    std::printf("  shape %s %s %s, %s(%g), %zu elements (%s)\n", shape_text(cfg.shape).c_str(), iabn::to_string(cfg.layout),
                iabn::to_string(cfg.dtype), iabn::to_string(cfg.activation), cfg.param, numel, megabytes(bytes).c_str());
    std::printf("  kernels dispatched to: %s\n", iabn::kernel_target().c_str());
    const std::string schedule = iabn::schedule_info();
    std::printf("  %s (each kernel's line: iabn::schedule_info())\n", schedule.substr(0, schedule.find('\n')).c_str());
    std::printf("\nerror against a float64 reference (norm-wise relative; max relative to the largest value):\n");
    for (const demo::Error& e : err.items) {
        std::printf("  %-14s %.2e   max %.2e\n", e.name.c_str(), e.normwise, e.max_relative);
    }
    std::printf("  worst: %.2e (%s)\n", err.worst(), err.within() ? "within tolerance" : "TOO LARGE");
    if (demo::storage_roundoff(cfg.dtype) > 0) {  // 16-bit tensors: the two budgets differ
        std::printf("  tolerance: z, dx %.2e (the %s rounding of each element, 2^%d, + 1e-5); the rest 1e-5 (f32)\n",
                    demo::tolerance(cfg.dtype), iabn::to_string(cfg.dtype),
                    std::ilogb(demo::storage_roundoff(cfg.dtype)));
    }
    std::printf("\ntime, median of %d runs (bandwidth counts the bytes the pass must move):\n", cfg.repeats);
    std::printf("  forward  (training) %8.3f ms  %6.1f GB/s  (read x, write z: %s)\n", fwd * 1e3, 2 * bytes / fwd / 1e9,
                megabytes(2.0 * bytes).c_str());
    std::printf("  backward (training) %8.3f ms  %6.1f GB/s  (read z and dz, write dx: %s)\n", bwd * 1e3,
                3 * bytes / bwd / 1e9, megabytes(3.0 * bytes).c_str());
    const std::string standard = std::string("BatchNorm + ") + iabn::to_string(cfg.activation) + " (x, y, saved stats)";
    std::printf("\nkept between forward and backward:\n");
    std::printf("  %-44s %10s\n", "InPlace-ABN (z, saved stats)", megabytes(bytes + channel_bytes).c_str());
    std::printf("  %-44s %10s  (%.2fx)\n", standard.c_str(), megabytes(2.0 * bytes + channel_bytes).c_str(),
                (2.0 * bytes + channel_bytes) / (bytes + channel_bytes));
    return err.within() ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn_demo: %s\n", e.what());
    return 1;
}
