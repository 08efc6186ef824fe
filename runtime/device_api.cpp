#include "device_api.h"

#include "iabn/iabn.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <type_traits>

// Every entry point iabn calls directly is resolved through this function; its weak definition
// is dlsym. A program may define its own, as one may define Halide's halide_opencl_get_symbol
// (iabn's tests count the device calls, allocations and waits of a call through both).
extern "C" __attribute__((weak)) void* iabn_device_get_symbol(void* library, const char* name) {
    return dlsym(library, name);
}

namespace iabn::detail {
namespace {

// Opens `library` once and resolves every entry point through `resolve`, which calls get() per
// symbol; the first failure is kept and rethrown by every later call.
template <typename Table, typename Resolve>
const Table& load(const char* api, const char* library, Resolve resolve) {
    static Table table{};
    static std::string failure;
    static std::once_flag once;
    std::call_once(once, [&] {
        void* lib = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
        if (!lib) {
            const char* why = dlerror();
            failure = std::string(api) + ": " + library + " could not be loaded: " + (why ? why : "unknown");
            return;
        }
        auto get = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(iabn_device_get_symbol(lib, name));
            if (!fn && failure.empty()) failure = std::string(api) + ": " + library + " has no " + name;
        };
        resolve(table, get);
    });
    if (!failure.empty()) throw Error(failure);
    return table;
}

}  // namespace

const CudaApi& cuda_api() {
    // libcuda.so.1 is the driver's own name (the unversioned libcuda.so exists only where the
    // toolkit's development files are installed).
    return load<CudaApi>("CUDA", "libcuda.so.1", [](CudaApi& t, auto get) {
        get(t.init, "cuInit");
        get(t.get_error_string, "cuGetErrorString");
        get(t.device_get_count, "cuDeviceGetCount");
        get(t.device_get, "cuDeviceGet");
        get(t.device_get_name, "cuDeviceGetName");
        get(t.device_get_attribute, "cuDeviceGetAttribute");
        get(t.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
        get(t.ctx_get_current, "cuCtxGetCurrent");
        get(t.ctx_set_current, "cuCtxSetCurrent");
        get(t.ctx_get_device, "cuCtxGetDevice");
        get(t.mem_alloc, "cuMemAlloc_v2");
        get(t.mem_free, "cuMemFree_v2");
        get(t.mem_alloc_async, "cuMemAllocAsync");
        get(t.mem_free_async, "cuMemFreeAsync");
        get(t.memset_d32_async, "cuMemsetD32Async");
        get(t.memset_d2d32_async, "cuMemsetD2D32Async");
        get(t.memcpy_htod, "cuMemcpyHtoD_v2");
        get(t.memcpy_dtoh, "cuMemcpyDtoH_v2");
        get(t.memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2");
        get(t.memcpy_dtod_async, "cuMemcpyDtoDAsync_v2");
        get(t.stream_create, "cuStreamCreate");
        get(t.stream_destroy, "cuStreamDestroy_v2");
        get(t.stream_synchronize, "cuStreamSynchronize");
        get(t.event_create, "cuEventCreate");
        get(t.event_destroy, "cuEventDestroy_v2");
        get(t.event_record, "cuEventRecord");
        get(t.event_synchronize, "cuEventSynchronize");
        get(t.event_elapsed_time, "cuEventElapsedTime");
        get(t.pointer_get_attribute, "cuPointerGetAttribute");
    });
}

const CudaGraphApi& cuda_graph_api() {
    return load<CudaGraphApi>("CUDA", "libcuda.so.1", [](CudaGraphApi& t, auto get) {
        get(t.stream_begin_capture, "cuStreamBeginCapture_v2");
        get(t.stream_end_capture, "cuStreamEndCapture");
        get(t.graph_instantiate, "cuGraphInstantiateWithFlags");
        get(t.graph_launch, "cuGraphLaunch");
        get(t.graph_exec_destroy, "cuGraphExecDestroy");
        get(t.graph_destroy, "cuGraphDestroy");
    });
}

void cuda_check(int result, const char* what) {
    if (result == 0) return;
    const char* text = nullptr;
    cuda_api().get_error_string(result, &text);
    throw Error(std::string("CUDA: ") + what + " failed: " + (text ? text : "error " + std::to_string(result)));
}

const OpenClApi& opencl_api() {
    // libOpenCL.so.1 is the ICD loader's runtime name (ocl-icd-libopencl1 on Debian).
    return load<OpenClApi>("OpenCL", "libOpenCL.so.1", [](OpenClApi& t, auto get) {
        get(t.get_platform_ids, "clGetPlatformIDs");
        get(t.get_platform_info, "clGetPlatformInfo");
        get(t.get_device_ids, "clGetDeviceIDs");
        get(t.get_device_info, "clGetDeviceInfo");
        get(t.create_context, "clCreateContext");
        get(t.retain_context, "clRetainContext");
        get(t.release_context, "clReleaseContext");
        get(t.create_command_queue, "clCreateCommandQueue");
        get(t.release_command_queue, "clReleaseCommandQueue");
        get(t.get_command_queue_info, "clGetCommandQueueInfo");
        get(t.get_mem_object_info, "clGetMemObjectInfo");
        get(t.create_buffer, "clCreateBuffer");
        get(t.release_mem_object, "clReleaseMemObject");
        get(t.enqueue_fill_buffer, "clEnqueueFillBuffer");
        get(t.enqueue_read_buffer, "clEnqueueReadBuffer");
        get(t.enqueue_write_buffer, "clEnqueueWriteBuffer");
        get(t.enqueue_copy_buffer, "clEnqueueCopyBuffer");
        get(t.flush, "clFlush");
        get(t.finish, "clFinish");
    });
}

void opencl_check(int result, const char* what) {
    if (result != 0) throw Error(std::string("OpenCL: ") + what + " failed: error " + std::to_string(result));
}

}  // namespace iabn::detail
