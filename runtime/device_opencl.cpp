// Device::opencl: the caller's cl_command_queue (and its context) for the Halide runtime, and
// scratch as cl_mem objects released right after their last use is enqueued (OpenCL keeps a
// released object alive until the commands that use it are done), so a call enqueues its work
// and returns.
#include "device.h"

#ifndef IABN_WITH_OPENCL

namespace iabn::detail {
const DeviceBackend* opencl_backend() { return nullptr; }
}  // namespace iabn::detail

#else

#include "device_api.h"

#include <HalideRuntimeOpenCL.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace iabn::detail {
namespace {

// OpenCL 1.2 constants (cl.h is not needed to build this file).
constexpr OpenClApi::Uint kQueueContext = 0x1090;      // CL_QUEUE_CONTEXT
constexpr OpenClApi::Uint kQueueDevice = 0x1091;       // CL_QUEUE_DEVICE
constexpr OpenClApi::Uint kQueueProperties = 0x1093;   // CL_QUEUE_PROPERTIES
constexpr uint64_t kOutOfOrder = 1 << 0;               // CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE
constexpr OpenClApi::Uint kDeviceDoubleFp = 0x1032;    // CL_DEVICE_DOUBLE_FP_CONFIG
constexpr OpenClApi::Uint kMemContext = 0x1106;        // CL_MEM_CONTEXT
constexpr OpenClApi::Uint kPlatformName = 0x0902;      // CL_PLATFORM_NAME
constexpr uint64_t kDeviceTypeGpu = 1 << 2;            // CL_DEVICE_TYPE_GPU
constexpr uint64_t kDeviceTypeAccelerator = 1 << 3;    // CL_DEVICE_TYPE_ACCELERATOR
constexpr uint64_t kDeviceTypeAll = 0xFFFFFFFF;        // CL_DEVICE_TYPE_ALL
constexpr uint64_t kMemReadWrite = 1 << 0;             // CL_MEM_READ_WRITE
constexpr intptr_t kContextPlatform = 0x1084;          // CL_CONTEXT_PLATFORM

// Halide's OpenCL runtime has no setter for its context hooks: a program overrides the weak
// halide_acquire_cl_context / halide_release_cl_context with its own (below). For any Halide
// pipeline that is not an iabn call they do what Halide's own do: one process-wide context and
// queue on the first platform (HL_OCL_PLATFORM_NAME picks another) and its first GPU or
// accelerator (else any device), created at first use, used by one pipeline at a time.
std::mutex default_lock;  // held from acquire to release, on the calling thread
OpenClApi::Handle default_context = nullptr, default_queue = nullptr;

int create_default_context() {
    const OpenClApi& api = opencl_api();
    OpenClApi::Uint count = 0;
    if (int e = api.get_platform_ids(0, nullptr, &count); e != 0 || count == 0) return e ? e : -1;
    std::vector<OpenClApi::Handle> platforms(count);
    if (int e = api.get_platform_ids(count, platforms.data(), nullptr)) return e;
    OpenClApi::Handle platform = platforms[0];
    if (const char* wanted = std::getenv("HL_OCL_PLATFORM_NAME")) {
        for (OpenClApi::Handle p : platforms) {
            char name[256] = {};
            api.get_platform_info(p, kPlatformName, sizeof name - 1, name, nullptr);
            if (std::strstr(name, wanted)) platform = p;
        }
    }
    OpenClApi::Handle device = nullptr;
    OpenClApi::Uint found = 0;
    if (api.get_device_ids(platform, kDeviceTypeGpu | kDeviceTypeAccelerator, 1, &device, &found) != 0 || !found) {
        if (int e = api.get_device_ids(platform, kDeviceTypeAll, 1, &device, &found); e != 0 || !found) return e ? e : -1;
    }
    const intptr_t properties[] = {kContextPlatform, reinterpret_cast<intptr_t>(platform), 0};
    int error = 0;
    default_context = api.create_context(properties, 1, &device, nullptr, nullptr, &error);
    if (error) return error;
    default_queue = api.create_command_queue(default_context, device, 0, &error);
    return error;
}

class OpenClBackend final : public DeviceBackend {
public:
    const char* name() const override { return "Device::opencl"; }
    const halide_device_interface_t* interface() const override { return halide_opencl_device_interface(); }

    void begin(Call& call, const Options& options) const override {
        const OpenClApi& api = opencl_api();
        if (!options.opencl_queue) {
            throw InvalidArgument("Device::opencl: options.opencl_queue: expected the cl_command_queue to run on, got nullptr");
        }
        OpenClApi::Handle context = nullptr, device = nullptr;
        uint64_t properties = 0;
        opencl_check(api.get_command_queue_info(options.opencl_queue, kQueueContext, sizeof context, &context, nullptr),
                     "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)");
        opencl_check(api.get_command_queue_info(options.opencl_queue, kQueueProperties, sizeof properties, &properties,
                                                nullptr),
                     "clGetCommandQueueInfo(CL_QUEUE_PROPERTIES)");
        // A call's kernels and the workspace they share run one after another only on an in-order
        // queue (an out-of-order one would need events between them).
        if (properties & kOutOfOrder) {
            throw InvalidArgument("Device::opencl: options.opencl_queue: expected an in-order queue, got one with "
                                  "CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE");
        }
        // The per-channel sums are f64 (the kernels are built with cl_doubles).
        opencl_check(api.get_command_queue_info(options.opencl_queue, kQueueDevice, sizeof device, &device, nullptr),
                     "clGetCommandQueueInfo(CL_QUEUE_DEVICE)");
        uint64_t fp64 = 0;
        opencl_check(api.get_device_info(device, kDeviceDoubleFp, sizeof fp64, &fp64, nullptr),
                     "clGetDeviceInfo(CL_DEVICE_DOUBLE_FP_CONFIG)");
        if (fp64 == 0) {
            throw Error("Device::opencl: the queue's device has no double precision (cl_khr_fp64), which iabn's "
                        "OpenCL kernels need for their per-channel sums");
        }
        call.device_context = context;
        call.device_queue = options.opencl_queue;
    }

    void* allocate(Call& call, size_t bytes) const override {
        int error = 0;
        void* mem = opencl_api().create_buffer(call.device_context, kMemReadWrite, bytes, nullptr, &error);
        opencl_check(error, "clCreateBuffer");
        return mem;
    }

    void release(Call&, void* memory) const override {
        opencl_check(opencl_api().release_mem_object(memory), "clReleaseMemObject");
    }

    void fill(Call& call, void* memory, size_t count, DType dtype, double value) const override {
        const float f = static_cast<float>(value);
        const bool wide = dtype == DType::f64;
        const size_t size = wide ? sizeof value : sizeof f;
        opencl_check(opencl_api().enqueue_fill_buffer(call.device_queue, memory, wide ? static_cast<const void*>(&value)
                                                                                      : static_cast<const void*>(&f),
                                                      size, 0, count * size, 0, nullptr, nullptr),
                     "clEnqueueFillBuffer");
    }

    void read(Call& call, void* host, const void* memory, size_t bytes) const override {
        opencl_check(opencl_api().enqueue_read_buffer(call.device_queue, const_cast<void*>(memory), 1, 0, bytes, host,
                                                      0, nullptr, nullptr),
                     "clEnqueueReadBuffer");
    }

    // A cl_mem belongs to one context: the queue's. (A handle that is no cl_mem at all cannot be
    // asked: the ICD loader dereferences it.)
    std::string foreign(Call& call, const void* data) const override {
        OpenClApi::Handle context = nullptr;
        const int error = opencl_api().get_mem_object_info(const_cast<void*>(data), kMemContext, sizeof context,
                                                           &context, nullptr);
        if (error != 0) return "a handle clGetMemObjectInfo refuses (error " + std::to_string(error) + "), not a cl_mem";
        if (context != call.device_context) return "a cl_mem of another context than options.opencl_queue's";
        return {};
    }

    bool pointers_are_addresses() const override { return false; }
};

}  // namespace

const DeviceBackend* opencl_backend() {
    static const OpenClBackend backend;
    return &backend;
}

}  // namespace iabn::detail

// The overrides of the Halide runtime's weak OpenCL context hooks (see above).
extern "C" int halide_acquire_cl_context(void* user_context, void** context, void** queue, bool create) {
    using iabn::detail::Call;
    if (Call* call = Call::find(user_context)) {
        *context = call->device_context;
        *queue = call->device_queue;
        return 0;
    }
    iabn::detail::default_lock.lock();
    if (!iabn::detail::default_context && create) {
        int error = 0;
        try {
            error = iabn::detail::create_default_context();
        } catch (const iabn::Error&) {
            error = -1001;  // CL_PLATFORM_NOT_FOUND_KHR: no OpenCL library
        }
        if (error) {
            iabn::detail::default_context = iabn::detail::default_queue = nullptr;
            iabn::detail::default_lock.unlock();
            return error;
        }
    }
    *context = iabn::detail::default_context;
    *queue = iabn::detail::default_queue;
    return 0;
}

extern "C" int halide_release_cl_context(void* user_context) {
    if (!iabn::detail::Call::find(user_context)) iabn::detail::default_lock.unlock();
    return 0;
}

#endif
