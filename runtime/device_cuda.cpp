// Device::cuda: the caller's CUDA context and stream for the Halide runtime, and stream-ordered
// workspace memory (cuMemAllocAsync / cuMemFreeAsync; cuMemAlloc / cuMemFree where the device has
// no memory pools), so a call enqueues its work and returns.
#include "device.h"

#ifndef IABN_WITH_CUDA

namespace iabn::detail {
const DeviceBackend* cuda_backend() { return nullptr; }
}  // namespace iabn::detail

#else

#include "device_api.h"

#include <HalideRuntimeCuda.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

// CUDA's per-thread default stream: one handle, a different stream on every thread.
void* const kStreamPerThread = reinterpret_cast<void*>(uintptr_t{2});  // CU_STREAM_PER_THREAD

// Another library that sets Halide's CUDA hooks after iabn would send iabn's calls to its own
// context and streams: each call checks that iabn's are still installed.
template <typename Hook>
void check_hook(Hook (*set)(Hook), Hook ours, const char* name) {
    const Hook current = set(ours);
    if (current != ours) {
        set(current);
        throw Error(std::string("Device::cuda: Halide's ") + name +
                    " hook was replaced after iabn installed its own, so iabn's kernels would not run on the "
                    "caller's stream; set yours before iabn's first CUDA call (iabn hands other pipelines' "
                    "calls to the hooks it found)");
    }
}

// Whether the current context's device has stream-ordered memory pools (cuMemAllocAsync).
bool memory_pools(const CudaApi& api) {
    static std::mutex lock;
    static std::vector<int> known;  // per device ordinal: 0 unknown, 1 yes, 2 no
    int device = 0;
    cuda_check(api.ctx_get_device(&device), "cuCtxGetDevice");
    std::lock_guard<std::mutex> hold(lock);
    if (known.size() <= static_cast<size_t>(device)) known.resize(device + 1, 0);
    if (known[device] == 0) {
        int supported = 0;
        const int kMemoryPoolsSupported = 115;  // CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED
        cuda_check(api.device_get_attribute(&supported, kMemoryPoolsSupported, device), "cuDeviceGetAttribute");
        known[device] = supported ? 1 : 2;
    }
    return known[device] == 1;
}

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
        check_hook(halide_set_cuda_acquire_context, acquire_context, "acquire_context");
        check_hook(halide_set_cuda_release_context, release_context, "release_context");
        check_hook(halide_set_cuda_get_stream, get_stream, "get_stream");
        call.device_context = context;
        call.device_queue = options.cuda_stream;
        if (options.cuda_stream == kStreamPerThread) call.queue_thread = std::this_thread::get_id();
    }

    // (Only the workspace allocates: once per stream, and when it grows.)
    void* allocate(Call& call, size_t bytes) const override {
        const CudaApi& api = cuda_api();
        CudaApi::Ptr p = 0;
        if (memory_pools(api)) {
            cuda_check(api.mem_alloc_async(&p, bytes, call.device_queue), "cuMemAllocAsync");
        } else {
            cuda_check(api.mem_alloc(&p, bytes), "cuMemAlloc");
        }
        return reinterpret_cast<void*>(p);
    }

    void release(Call& call, void* memory) const override {
        const CudaApi& api = cuda_api();
        if (memory_pools(api)) {
            cuda_check(api.mem_free_async(address(memory), call.device_queue), "cuMemFreeAsync");
        } else {
            // Without pools, the memory's last use must be done first.
            cuda_check(api.stream_synchronize(call.device_queue), "cuStreamSynchronize");
            cuda_check(api.mem_free(address(memory)), "cuMemFree");
        }
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

    // The device a pointer's memory was allocated on (or registered with) must be the current
    // context's. (Asked by device ordinal: a pointer's CU_POINTER_ATTRIBUTE_CONTEXT is null for
    // virtual-memory allocations, e.g. PyTorch's expandable segments.) Managed memory is
    // reachable from every device.
    std::string foreign(Call&, const void* data) const override {
        const CudaApi& api = cuda_api();
        const int kIsManaged = 8, kDeviceOrdinal = 9;  // CU_POINTER_ATTRIBUTE_*
        const int kInvalidValue = 1;                   // CUDA_ERROR_INVALID_VALUE
        int ordinal = -1;
        const int status = api.pointer_get_attribute(&ordinal, kDeviceOrdinal, address(data));
        if (status == kInvalidValue) {
            return "an address CUDA does not know (host memory neither allocated nor registered with CUDA?)";
        }
        cuda_check(status, "cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)");
        int device = -1;
        cuda_check(api.ctx_get_device(&device), "cuCtxGetDevice");
        if (ordinal == device) return {};
        unsigned managed = 0;  // (a bool attribute, returned in 32 bits)
        cuda_check(api.pointer_get_attribute(&managed, kIsManaged, address(data)),
                   "cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_IS_MANAGED)");
        if (managed) return {};
        return "memory of CUDA device " + std::to_string(ordinal) + ", but the current context is on device " +
               std::to_string(device);
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
