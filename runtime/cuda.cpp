#include "cuda.h"

#include "halide_glue.h"

#include <string>
#include <type_traits>

#ifdef IABN_WITH_CUDA
#include <HalideRuntimeCuda.h>
#include <dlfcn.h>

#include <mutex>
#endif

namespace iabn::detail {

#ifndef IABN_WITH_CUDA

bool cuda_built() { return false; }

namespace {
[[noreturn]] void no_cuda() { throw Error("Device::cuda: this build of iabn has no CUDA kernels (IABN_CUDA=OFF)"); }
}  // namespace

CudaSession::CudaSession(void*) { no_cuda(); }
CudaSession::~CudaSession() = default;
void CudaSession::finish() { no_cuda(); }
void wrap_device_memory(Halide::Runtime::Buffer<void>&, void*) { no_cuda(); }
void copy_to_device(Halide::Runtime::Buffer<void>&) { no_cuda(); }
void allocate_on_device(Halide::Runtime::Buffer<void>&) { no_cuda(); }
void copy_to_host(void*, const void*, size_t, void*) { no_cuda(); }

#else

bool cuda_built() { return true; }

namespace {

// The few driver entry points iabn calls itself (the Halide runtime finds its own in the
// process once libcuda.so.1 is loaded with RTLD_GLOBAL). CUresult is an int; 0 is success.
struct Driver {
    int (*ctx_get_current)(void** ctx) = nullptr;
    int (*stream_synchronize)(void* stream) = nullptr;
    int (*memcpy_dtoh_async)(void* dst, unsigned long long src, size_t bytes, void* stream) = nullptr;
    int (*get_error_string)(int error, const char** text) = nullptr;
};

const Driver& driver() {
    static Driver d;
    static std::string failure;
    static std::once_flag once;
    std::call_once(once, [] {
        // libcuda.so.1 is the driver's own name (the unversioned libcuda.so, which Halide's runtime
        // tries, exists only where the toolkit's development files are installed). Loaded here,
        // not linked: a program linked with iabn starts on machines without a driver.
        void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        if (!lib) {
            const char* why = dlerror();
            failure = std::string("the CUDA driver (libcuda.so.1) could not be loaded: ") + (why ? why : "unknown");
            return;
        }
        auto get = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
            if (!fn && failure.empty()) failure = std::string("the CUDA driver has no ") + name;
        };
        get(d.ctx_get_current, "cuCtxGetCurrent");
        get(d.stream_synchronize, "cuStreamSynchronize");
        get(d.memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2");
        get(d.get_error_string, "cuGetErrorString");
    });
    if (!failure.empty()) throw Error("Device::cuda: " + failure);
    return d;
}

void check(int result, const char* what) {
    if (result == 0) return;
    const char* text = nullptr;
    if (driver().get_error_string) driver().get_error_string(result, &text);
    throw Error(std::string("CUDA: ") + what + " failed: " + (text ? text : "error " + std::to_string(result)));
}

// The context and stream of the iabn call running on this thread (Halide runs a pipeline's GPU
// work on the thread that called it).
thread_local void* t_context = nullptr;
thread_local void* t_stream = nullptr;

int acquire_context(void* user_context, void** ctx, bool /*create*/) {
    if (!t_context) {
        halide_error(user_context, "iabn: no CUDA context: a Device::cuda call found none current on its thread");
        return halide_error_code_generic_error;
    }
    *ctx = t_context;
    return 0;
}
int release_context(void*) { return 0; }
int get_stream(void*, void*, void** stream) {
    *stream = t_stream;
    return 0;
}

void install_hooks() {
    static std::once_flag once;
    std::call_once(once, [] {
        halide_set_cuda_acquire_context(acquire_context);
        halide_set_cuda_release_context(release_context);
        halide_set_cuda_get_stream(get_stream);
        // The per-channel scratch of a call goes back to Halide's cache when the call returns
        // (after its stream is done) and serves the next call: no cuMemAlloc/cuMemFree per call.
        halide_reuse_device_allocations(nullptr, true);
    });
}

}  // namespace

CudaSession::CudaSession(void* stream) {
    install_hooks();
    void* ctx = nullptr;
    check(driver().ctx_get_current(&ctx), "cuCtxGetCurrent");
    if (!ctx) {
        throw Error("Device::cuda: no current CUDA context on this thread (make one current first, e.g. "
                    "cudaSetDevice() or cuCtxSetCurrent())");
    }
    t_context = ctx;
    t_stream = stream;
}

CudaSession::~CudaSession() {
    if (!finished_) driver().stream_synchronize(t_stream);  // unwinding: wait, ignore errors
}

void CudaSession::finish() {
    finished_ = true;
    check(driver().stream_synchronize(t_stream), "cuStreamSynchronize");
}

void wrap_device_memory(Halide::Runtime::Buffer<void>& b, void* device_ptr) {
    const int status = b.device_wrap_native(halide_cuda_device_interface(), reinterpret_cast<uint64_t>(device_ptr));
    if (status != 0) throw Error("CUDA: wrapping a device pointer failed (Halide status " + std::to_string(status) + ")");
    b.set_device_dirty(true);  // the values are on the device; there is no host copy
}

void copy_to_device(Halide::Runtime::Buffer<void>& b) {
    b.set_host_dirty(true);
    run_kernel("copy_to_device", [&](void* uc) { return b.copy_to_device(halide_cuda_device_interface(), uc); });
}

void allocate_on_device(Halide::Runtime::Buffer<void>& b) {
    run_kernel("device_malloc", [&](void* uc) { return b.device_malloc(halide_cuda_device_interface(), uc); });
}

void copy_to_host(void* host, const void* device, size_t bytes, void* stream) {
    const Driver& d = driver();
    check(d.memcpy_dtoh_async(host, reinterpret_cast<unsigned long long>(device), bytes, stream), "cuMemcpyDtoHAsync");
    check(d.stream_synchronize(stream), "cuStreamSynchronize");
}

#endif

}  // namespace iabn::detail

namespace iabn {
bool has_cuda_kernels() { return detail::cuda_built(); }
}  // namespace iabn
