// Uses the installed iabn: one training step (forward, then backward) of an InPlaceABN layer on a
// small tensor, then checks properties that hold for any correct kernel: the output is normalized
// (identity activation, weight 1, bias 0), dx has zero mean per channel and bias_grad is the
// per-channel sum of dz.
//
// The same step again on bf16 tensors (f32 per-channel state), with tolerances of bf16's rounding.
//
// Then, where this program was built with OpenCL (CMakeLists.txt) and iabn has OpenCL kernels and
// the machine an OpenCL device, the same step on OpenCL buffers with the functional API: the same
// checks, and the results must agree with the CPU run.
#include <iabn/iabn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

namespace {

const int64_t n = 4, c = 3, hw = 50;
const std::vector<int64_t> shape = {n, c, hw};  // nchw, rank 3

std::vector<float> input_x() {
    std::vector<float> x(static_cast<size_t>(n * c * hw));
    for (size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(std::sin(0.7 * i) * 3 + (i / hw) % c);
    return x;
}

std::vector<float> input_dz() {
    std::vector<float> dz(static_cast<size_t>(n * c * hw));
    for (size_t i = 0; i < dz.size(); i++) dz[i] = static_cast<float>(std::cos(0.3 * i));
    return dz;
}

// bf16 is the upper half of an f32: narrowing rounds the lower half away, to nearest even.
uint16_t to_bf16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return static_cast<uint16_t>((b + 0x7fff + ((b >> 16) & 1)) >> 16);  // (no NaN here)
}
float from_bf16(uint16_t h) {
    const uint32_t b = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// z: the forward's output (written over x); dx: the backward's (written over dz). Returns the
// number of channels that fail. `tol` scales the thresholds (1: f32; 16-bit runs: their rounding).
int check(const char* run, const std::vector<float>& z, const std::vector<float>& dx,
          const std::vector<double>& bias_grad, double tol = 1) {
    const std::vector<float> dz = input_dz();
    int failures = 0;
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0, dsum = 0, dz_sum = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t s = 0; s < hw; s++) {
                const size_t k = static_cast<size_t>((i * c + ch) * hw + s);
                sum += z[k];
                sq += double(z[k]) * z[k];
                dsum += dx[k];
                dz_sum += dz[k];
            }
        }
        const double m = double(n * hw), mean = sum / m, var = sq / m - mean * mean;
        std::printf("%s channel %lld: mean %.2e  var %.6f  mean(dx) %.2e  bias_grad %.1f\n", run,
                    static_cast<long long>(ch), mean, var, dsum / m, bias_grad[ch]);
        if (std::abs(mean) > 1e-5 * tol || std::abs(var - 1) > 1e-3 * tol || std::abs(dsum / m) > 1e-6 * tol ||
            std::abs(bias_grad[ch] - dz_sum) > 1e-4 * m * tol) {
            failures++;
        }
    }
    return failures;
}

// What the CPU run produced, for the OpenCL run to agree with.
struct Result {
    std::vector<float> z, dx;
    std::vector<double> running_mean, running_var, saved_mean, saved_invstd, weight_grad, bias_grad;
};

}  // namespace

#ifdef IABN_CONSUMER_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdexcept>
#include <string>

namespace {

void cl_check(cl_int error, const char* what) {
    if (error != CL_SUCCESS) throw std::runtime_error(std::string(what) + " failed: OpenCL error " + std::to_string(error));
}

// The first device of the first platform that has one; false if there is none.
bool first_opencl_device(cl_platform_id& platform, cl_device_id& device) {
    cl_uint count = 0;
    if (clGetPlatformIDs(0, nullptr, &count) != CL_SUCCESS || count == 0) return false;  // no ICD installed
    std::vector<cl_platform_id> platforms(count);
    cl_check(clGetPlatformIDs(count, platforms.data(), nullptr), "clGetPlatformIDs");
    for (cl_platform_id p : platforms) {
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &device, nullptr) == CL_SUCCESS) {
            platform = p;
            return true;
        }
    }
    return false;
}

bool agree(const char* what, const std::vector<double>& got, const std::vector<double>& cpu) {
    for (size_t i = 0; i < cpu.size(); i++) {
        if (std::abs(got[i] - cpu[i]) > 1e-4 * (1 + std::abs(cpu[i]))) {
            std::printf("opencl %s[%zu] = %.8g, the CPU run gave %.8g\n", what, i, got[i], cpu[i]);
            return false;
        }
    }
    return true;
}

// The CPU step again on OpenCL buffers, with the functional API. Returns the number of failures.
int opencl_step(const Result& cpu) {
    if (!iabn::has_opencl_kernels()) {
        std::printf("OpenCL part skipped: this iabn was built without OpenCL kernels (IABN_OPENCL=OFF)\n");
        return 0;
    }
    cl_platform_id platform;
    cl_device_id device;
    if (!first_opencl_device(platform, device)) {
        std::printf("OpenCL part skipped: no OpenCL platform has a device here\n");
        return 0;
    }
    char device_name[256] = {}, platform_name[256] = {};
    clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof device_name - 1, device_name, nullptr);
    clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof platform_name - 1, platform_name, nullptr);

    cl_int error = CL_SUCCESS;
    const cl_context_properties properties[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform), 0};
    cl_context context = clCreateContext(properties, 1, &device, nullptr, nullptr, &error);
    cl_check(error, "clCreateContext");
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &error);  // in order
    cl_check(error, "clCreateCommandQueue");

    // A cl_mem with a copy of `host` (blocking write), as an iabn tensor on Device::opencl.
    std::vector<cl_mem> buffers;
    auto upload = [&](const std::vector<float>& host, std::vector<int64_t> dims) {
        const size_t bytes = host.size() * sizeof(float);
        cl_mem mem = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes, nullptr, &error);
        cl_check(error, "clCreateBuffer");
        cl_check(clEnqueueWriteBuffer(queue, mem, CL_TRUE, 0, bytes, host.data(), 0, nullptr, nullptr),
                 "clEnqueueWriteBuffer");
        buffers.push_back(mem);
        return iabn::TensorRef{mem, iabn::DType::f32, dims, iabn::Device::opencl};
    };
    auto download = [&](const iabn::TensorRef& t, size_t count) {
        std::vector<float> host(count);
        cl_check(clEnqueueReadBuffer(queue, static_cast<cl_mem>(t.data), CL_TRUE, 0, count * sizeof(float),
                                     host.data(), 0, nullptr, nullptr),
                 "clEnqueueReadBuffer");
        return host;
    };
    auto download_channels = [&](const iabn::TensorRef& t) {
        const std::vector<float> v = download(t, static_cast<size_t>(c));
        return std::vector<double>(v.begin(), v.end());
    };

    const std::vector<float> ones(static_cast<size_t>(c), 1.0f), zeros(static_cast<size_t>(c), 0.0f);
    const iabn::TensorRef x = upload(input_x(), shape), dz = upload(input_dz(), shape);
    // What InPlaceABN starts from: weight 1, bias 0, running mean 0, running var 1.
    const iabn::ChannelState state{upload(ones, {c}),  upload(zeros, {c}), upload(zeros, {c}),
                                   upload(ones, {c}),  upload(zeros, {c}), upload(zeros, {c})};
    const iabn::ParamGrads grads{upload(zeros, {c}), upload(zeros, {c})};

    iabn::Options options;  // the defaults, as the CPU layer's
    options.opencl_queue = queue;
    iabn::forward(x, state, options);                 // enqueued: x will hold z
    iabn::backward(x, dz, state, grads, options);     // enqueued: dz will hold dx
    cl_check(clFinish(queue), "clFinish");

    Result cl;
    cl.z = download(x, cpu.z.size());
    cl.dx = download(dz, cpu.dx.size());
    cl.running_mean = download_channels(state.running_mean);
    cl.running_var = download_channels(state.running_var);
    cl.saved_mean = download_channels(state.saved_mean);
    cl.saved_invstd = download_channels(state.saved_invstd);
    cl.weight_grad = download_channels(grads.weight_grad);
    cl.bias_grad = download_channels(grads.bias_grad);
    for (cl_mem mem : buffers) clReleaseMemObject(mem);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);

    int failures = check("opencl", cl.z, cl.dx, cl.bias_grad);
    const bool same = agree("z", {cl.z.begin(), cl.z.end()}, {cpu.z.begin(), cpu.z.end()}) &&
                      agree("dx", {cl.dx.begin(), cl.dx.end()}, {cpu.dx.begin(), cpu.dx.end()}) &&
                      agree("running_mean", cl.running_mean, cpu.running_mean) &&
                      agree("running_var", cl.running_var, cpu.running_var) &&
                      agree("saved_mean", cl.saved_mean, cpu.saved_mean) &&
                      agree("saved_invstd", cl.saved_invstd, cpu.saved_invstd) &&
                      agree("weight_grad", cl.weight_grad, cpu.weight_grad) &&
                      agree("bias_grad", cl.bias_grad, cpu.bias_grad);
    failures += same ? 0 : 1;
    std::printf("OpenCL part ran on %s (%s): %s\n", device_name, platform_name,
                same ? "agrees with the CPU run" : "DIFFERS from the CPU run");
    return failures;
}

}  // namespace
#endif

int main() try {
    // The CPU run, with the owning layer.
    Result cpu;
    cpu.z = input_x();
    cpu.dx = input_dz();
    iabn::InPlaceABN layer(c);
    iabn::TensorRef x{cpu.z.data(), iabn::DType::f32, shape};
    layer.forward(x);  // x now holds z
    iabn::TensorRef dz{cpu.dx.data(), iabn::DType::f32, shape};
    layer.backward(x, dz);  // dz now holds dx
    cpu.running_mean = layer.running_mean();
    cpu.running_var = layer.running_var();
    cpu.saved_mean = layer.saved_mean();
    cpu.saved_invstd = layer.saved_invstd();
    cpu.weight_grad = layer.weight_grad();
    cpu.bias_grad = layer.bias_grad();
    int failures = check("cpu", cpu.z, cpu.dx, cpu.bias_grad);
    std::printf("iabn kernels: %s\n", iabn::kernel_target().c_str());

    // bf16 tensors, f32 state: the thresholds grow by bf16's unit roundoff over f32's budget.
    {
        std::vector<uint16_t> x16, dz16;
        for (float v : input_x()) x16.push_back(to_bf16(v));
        for (float v : input_dz()) dz16.push_back(to_bf16(v));
        iabn::InPlaceABN layer16(c, iabn::Options(), iabn::DType::bf16);
        iabn::TensorRef x{x16.data(), iabn::DType::bf16, shape}, dz{dz16.data(), iabn::DType::bf16, shape};
        layer16.forward(x);
        layer16.backward(x, dz);
        std::vector<float> z, dx;
        for (uint16_t h : x16) z.push_back(from_bf16(h));
        for (uint16_t h : dz16) dx.push_back(from_bf16(h));
        failures += check("cpu bf16", z, dx, layer16.bias_grad(), 400);  // 2^-8 / 1e-5 ~ 400
    }

#ifdef IABN_CONSUMER_OPENCL
    failures += opencl_step(cpu);
#else
    std::printf("OpenCL part skipped: this program was built without OpenCL (CMake found no OpenCL)\n");
#endif
    std::printf("%s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
} catch (const std::exception& e) {
    std::printf("iabn_consumer: %s\nFAILED\n", e.what());
    return 1;
}
