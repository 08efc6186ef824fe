#include "device_probe.h"

#include <dlfcn.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

namespace iabn_test {
namespace {

using EnqueueKernel = int (*)(void* queue, void* kernel, unsigned dims, const size_t* offset, const size_t* global,
                              const size_t* local, unsigned wait_count, void* const* wait, void** event);
using CreateBuffer = void* (*)(void* context, uint64_t flags, size_t bytes, void* host, int* error);
using GetKernelInfo = int (*)(void* kernel, unsigned name, size_t size, void* value, size_t* size_ret);
using EnqueueTransfer = int (*)(void* queue, void* mem, unsigned blocking, size_t offset, size_t bytes, void* host,
                                unsigned wait_count, void* const* wait, void** event);
using Finish = int (*)(void* queue);
using WaitForEvents = int (*)(unsigned count, void* const* events);

void* opencl_library() {
    static void* lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_GLOBAL);
    return lib;
}

void* real(const char* name) { return opencl_library() ? dlsym(opencl_library(), name) : nullptr; }

EnqueueKernel real_enqueue = nullptr;
CreateBuffer real_create = nullptr;
std::atomic<bool> resolved{false}, cuda_resolved{false};
std::atomic<bool> recording{false}, dry{false};
std::atomic<size_t> bytes{0}, created{0}, waited{0};
EnqueueTransfer real_read = nullptr, real_write = nullptr;
Finish real_finish = nullptr;
WaitForEvents real_wait = nullptr;
std::mutex launches_mutex;
std::vector<Launch> recorded;

int recording_enqueue(void* queue, void* kernel, unsigned dims, const size_t* offset, const size_t* global,
                      const size_t* local, unsigned wait_count, void* const* wait, void** event) {
    if (recording) {
        Launch l;
        static const auto info = reinterpret_cast<GetKernelInfo>(real("clGetKernelInfo"));
        char name[256] = {};
        info(kernel, 0x1190 /* CL_KERNEL_FUNCTION_NAME */, sizeof name - 1, name, nullptr);
        l.kernel = name;
        for (unsigned d = 0; d < dims && d < 3; d++) {
            l.global[d] = global[d];
            l.local[d] = local ? local[d] : 1;
        }
        std::lock_guard<std::mutex> lock(launches_mutex);
        recorded.push_back(l);
    }
    if (dry) return 0;  // CL_SUCCESS, nothing enqueued
    return real_enqueue(queue, kernel, dims, offset, global, local, wait_count, wait, event);
}

void* counting_create(void* context, uint64_t flags, size_t size, void* host, int* error) {
    if (recording) {
        bytes += size;
        created++;
    }
    return real_create(context, flags, size, host, error);
}

int counting_read(void* queue, void* mem, unsigned blocking, size_t offset, size_t size, void* host,
                  unsigned wait_count, void* const* wait, void** event) {
    if (recording && blocking) waited++;
    return real_read(queue, mem, blocking, offset, size, host, wait_count, wait, event);
}

int counting_write(void* queue, void* mem, unsigned blocking, size_t offset, size_t size, void* host,
                   unsigned wait_count, void* const* wait, void** event) {
    if (recording && blocking) waited++;
    return real_write(queue, mem, blocking, offset, size, host, wait_count, wait, event);
}

int counting_finish(void* queue) {
    if (recording) waited++;
    return real_finish(queue);
}

int counting_wait(unsigned count, void* const* events) {
    if (recording) waited++;
    return real_wait(count, events);
}

// CUDA driver entry points (CUresult is an int; CUdeviceptr a 64-bit integer).
using CuLaunch = int (*)(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                         unsigned shared, void* stream, void** params, void** extra);
using CuAlloc = int (*)(unsigned long long* ptr, size_t bytes);
using CuAllocAsync = int (*)(unsigned long long* ptr, size_t bytes, void* stream);
using CuFree = int (*)(unsigned long long ptr);
using CuSync = int (*)(void* stream_or_event);
using CuCtxSync = int (*)();
using CuCopyDtoH = int (*)(void* host, unsigned long long device, size_t bytes);
using CuCopyHtoD = int (*)(unsigned long long device, const void* host, size_t bytes);
CuLaunch real_cu_launch = nullptr;
CuAlloc real_cu_alloc = nullptr;
CuAllocAsync real_cu_alloc_async = nullptr;
CuFree real_cu_free = nullptr;
CuSync real_cu_stream_sync = nullptr, real_cu_event_sync = nullptr;
CuCtxSync real_cu_ctx_sync = nullptr;
CuCopyDtoH real_cu_dtoh = nullptr;
CuCopyHtoD real_cu_htod = nullptr;

int cu_launch(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
              void* stream, void** params, void** extra) {
    if (recording) {
        Launch l;
        const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
        for (int d = 0; d < 3; d++) {
            l.global[d] = size_t{grid[d]} * block[d];
            l.local[d] = block[d];
        }
        std::lock_guard<std::mutex> lock(launches_mutex);
        recorded.push_back(l);
    }
    return real_cu_launch(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra);
}
int cu_alloc(unsigned long long* ptr, size_t size) {
    if (recording) {
        bytes += size;
        created++;
    }
    return real_cu_alloc(ptr, size);
}
int cu_alloc_async(unsigned long long* ptr, size_t size, void* stream) {
    if (recording) {
        bytes += size;
        created++;
    }
    return real_cu_alloc_async(ptr, size, stream);
}
int cu_free(unsigned long long ptr) {  // (may wait for the device)
    if (recording) waited++;
    return real_cu_free(ptr);
}
int cu_stream_sync(void* stream) {
    if (recording) waited++;
    return real_cu_stream_sync(stream);
}
int cu_event_sync(void* event) {
    if (recording) waited++;
    return real_cu_event_sync(event);
}
int cu_ctx_sync() {
    if (recording) waited++;
    return real_cu_ctx_sync();
}
int cu_dtoh(void* host, unsigned long long device, size_t size) {
    if (recording) waited++;
    return real_cu_dtoh(host, device, size);
}
int cu_htod(unsigned long long device, const void* host, size_t size) {
    if (recording) waited++;
    return real_cu_htod(device, host, size);
}

// Keeps `fn` as the real entry point and hands out the wrapper instead.
template <typename F>
void* instead(void* fn, F& real_fn, F wrapper) {
    real_fn = reinterpret_cast<F>(fn);
    return reinterpret_cast<void*>(wrapper);
}

// The wrapper of an entry point that is counted, or the entry point itself.
void* wrapped(const char* name, void* fn) {
    auto is = [&](const char* n) { return fn && std::strcmp(name, n) == 0; };
    if (is("clCreateBuffer")) return instead(fn, real_create, &counting_create);
    if (is("clEnqueueReadBuffer")) return instead(fn, real_read, &counting_read);
    if (is("clEnqueueWriteBuffer")) return instead(fn, real_write, &counting_write);
    if (is("clFinish")) return instead(fn, real_finish, &counting_finish);
    if (is("clWaitForEvents")) return instead(fn, real_wait, &counting_wait);
    if (is("cuMemAlloc_v2")) return instead(fn, real_cu_alloc, &cu_alloc);
    if (is("cuMemAllocAsync")) return instead(fn, real_cu_alloc_async, &cu_alloc_async);
    if (is("cuMemFree_v2")) return instead(fn, real_cu_free, &cu_free);
    if (is("cuStreamSynchronize")) return instead(fn, real_cu_stream_sync, &cu_stream_sync);
    if (is("cuEventSynchronize")) return instead(fn, real_cu_event_sync, &cu_event_sync);
    if (is("cuCtxSynchronize")) return instead(fn, real_cu_ctx_sync, &cu_ctx_sync);
    if (is("cuMemcpyDtoH_v2")) return instead(fn, real_cu_dtoh, &cu_dtoh);
    if (is("cuMemcpyHtoD_v2")) return instead(fn, real_cu_htod, &cu_htod);
    return fn;
}

}  // namespace

DeviceProbe::DeviceProbe(bool dry_run) {
    std::lock_guard<std::mutex> lock(launches_mutex);
    recorded.clear();
    bytes = 0;
    created = 0;
    waited = 0;
    dry = dry_run;
    recording = true;
}

DeviceProbe::~DeviceProbe() {
    recording = false;
    dry = false;
}

std::vector<Launch> DeviceProbe::launches() const {
    std::lock_guard<std::mutex> lock(launches_mutex);
    return recorded;
}

size_t DeviceProbe::allocated_bytes() const { return bytes; }
size_t DeviceProbe::buffers_created() const { return created; }
size_t DeviceProbe::waits() const { return waited; }
bool DeviceProbe::installed(iabn::Device device) const {
    return device == iabn::Device::cuda ? cuda_resolved.load() : resolved.load();
}

const OpenClEvents& opencl_events() {
    static const OpenClEvents e = [] {
        OpenClEvents t{};
        t.create_user_event = reinterpret_cast<decltype(t.create_user_event)>(real("clCreateUserEvent"));
        t.set_user_event_status = reinterpret_cast<decltype(t.set_user_event_status)>(real("clSetUserEventStatus"));
        t.enqueue_barrier_with_wait_list =
            reinterpret_cast<decltype(t.enqueue_barrier_with_wait_list)>(real("clEnqueueBarrierWithWaitList"));
        t.release_event = reinterpret_cast<decltype(t.release_event)>(real("clReleaseEvent"));
        t.get_command_queue_info = reinterpret_cast<decltype(t.get_command_queue_info)>(real("clGetCommandQueueInfo"));
        if (!t.create_user_event || !t.set_user_event_status || !t.enqueue_barrier_with_wait_list ||
            !t.release_event || !t.get_command_queue_info) {
            throw std::runtime_error("OpenCL: the ICD loader lacks the OpenCL 1.2 event entry points");
        }
        return t;
    }();
    return e;
}

}  // namespace iabn_test

// Overrides the Halide runtime's weak definition (the one in libiabn.a): Halide resolves each
// OpenCL entry point through it once, when it first needs OpenCL.
extern "C" void* halide_opencl_get_symbol(void* /*user_context*/, const char* name) {
    using namespace iabn_test;
    void* fn = real(name);
    if (std::strcmp(name, "clEnqueueNDRangeKernel") == 0 && fn) {
        resolved = true;
        return instead(fn, real_enqueue, &recording_enqueue);
    }
    return wrapped(name, fn);
}

// Overrides the Halide runtime's weak definition for CUDA likewise (Halide's own looks in the
// process first, then loads the driver).
extern "C" void* halide_cuda_get_symbol(void* /*user_context*/, const char* name) {
    using namespace iabn_test;
    void* fn = dlsym(RTLD_DEFAULT, name);
    if (!fn) {
        static void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        fn = lib ? dlsym(lib, name) : nullptr;
    }
    if (std::strcmp(name, "cuLaunchKernel") == 0 && fn) {
        cuda_resolved = true;
        return instead(fn, real_cu_launch, &cu_launch);
    }
    return wrapped(name, fn);
}

// Overrides iabn's weak definition (runtime/device_api.cpp): iabn resolves the entry points it
// calls itself through it, once per process.
extern "C" void* iabn_device_get_symbol(void* library, const char* name) {
    return iabn_test::wrapped(name, dlsym(library, name));
}
