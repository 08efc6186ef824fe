// Device::cuda: the caller's CUDA context and stream for the Halide runtime, and stream-ordered
// scratch memory (cuMemAllocAsync / cuMemFreeAsync), so a call enqueues its work and returns.
#include "device.h"

#ifndef IABN_WITH_CUDA

namespace iabn::detail {
const DeviceBackend* cuda_backend() { return nullptr; }
}  // namespace iabn::detail

#else

#include "device_api.h"

#include <HalideRuntimeCuda.h>

#include <cstring>
#include <mutex>

namespace iabn::detail {
namespace {

// Halide asks for a context and a stream around every kernel launch and device operation. An
// iabn call answers with its caller's; any other pipeline of the process gets what the handlers
// installed before iabn's give (Halide's defaults, or the program's own).
halide_cuda_acquire_context_t previous_acquire = nullptr;
halide_cuda_release_context_t previous_release = nullptr;
halide_cuda_get_stream_t previous_get_stream = nullptr;

int acquire_context(void* user_context, void** context, bool create) {
    if (Call* call = Call::find(user_context)) {
        *context = call->device_context;
        return 0;
    }
    return previous_acquire(user_context, context, create);
}

int release_context(void* user_context) {
    if (Call::find(user_context)) return 0;
    return previous_release(user_context);
}

int get_stream(void* user_context, void* context, void** stream) {
    if (Call* call = Call::find(user_context)) {
        *stream = call->device_queue;
        return 0;
    }
    return previous_get_stream(user_context, context, stream);
}

CudaApi::Ptr address(const void* p) { return reinterpret_cast<CudaApi::Ptr>(p); }

class CudaBackend final : public DeviceBackend {
public:
    const char* name() const override { return "Device::cuda"; }
    const halide_device_interface_t* interface() const override { return halide_cuda_device_interface(); }

    void begin(Call& call, const Options& options) const override {
        const CudaApi& api = cuda_api();
        static std::once_flag once;
        std::call_once(once, [] {
            previous_acquire = halide_set_cuda_acquire_context(acquire_context);
            previous_release = halide_set_cuda_release_context(release_context);
            previous_get_stream = halide_set_cuda_get_stream(get_stream);
        });
        void* context = nullptr;
        const int status = api.ctx_get_current(&context);
        const int not_initialized = 3;  // CUDA_ERROR_NOT_INITIALIZED: cuInit never called, so no context
        if (status != not_initialized) cuda_check(status, "cuCtxGetCurrent");
        if (!context) {
            throw Error("Device::cuda: no current CUDA context on this thread (make one current first, e.g. "
                        "cudaSetDevice() or cuCtxSetCurrent())");
        }
        call.device_context = context;
        call.device_queue = options.cuda_stream;
    }

    void* allocate(Call& call, size_t bytes) const override {
        CudaApi::Ptr p = 0;
        cuda_check(cuda_api().mem_alloc_async(&p, bytes, call.device_queue), "cuMemAllocAsync");
        return reinterpret_cast<void*>(p);
    }

    void release(Call& call, void* memory) const override {
        cuda_check(cuda_api().mem_free_async(address(memory), call.device_queue), "cuMemFreeAsync");
    }

    void fill(Call& call, void* memory, size_t count, DType dtype, double value) const override {
        const CudaApi& api = cuda_api();
        if (dtype == DType::f32) {
            const float f = static_cast<float>(value);
            unsigned bits;
            std::memcpy(&bits, &f, sizeof bits);
            cuda_check(api.memset_d32_async(address(memory), bits, count, call.device_queue), "cuMemsetD32Async");
            return;
        }
        // An f64 is two 32-bit words: each set as a column of a 2-D memset with an 8-byte pitch.
        uint64_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        for (int word = 0; word < 2; word++) {
            const unsigned part = static_cast<unsigned>(bits >> (32 * word));
            cuda_check(api.memset_d2d32_async(address(memory) + 4 * word, 8, part, 1, count, call.device_queue),
                       "cuMemsetD2D32Async");
        }
    }

    void read(Call& call, void* host, const void* memory, size_t bytes) const override {
        const CudaApi& api = cuda_api();
        cuda_check(api.memcpy_dtoh_async(host, address(memory), bytes, call.device_queue), "cuMemcpyDtoHAsync");
        cuda_check(api.stream_synchronize(call.device_queue), "cuStreamSynchronize");
    }

    bool pointers_are_addresses() const override { return true; }
};

}  // namespace

const DeviceBackend* cuda_backend() {
    static const CudaBackend backend;
    return &backend;
}

}  // namespace iabn::detail

#endif
