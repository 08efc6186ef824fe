#include "cuda_driver.h"

#include <dlfcn.h>

#include <stdexcept>
#include <type_traits>

namespace iabn_test {
namespace {

// The driver API entry points used here (CUresult is an int; 0 is success).
struct Api {
    int (*init)(unsigned) = nullptr;
    int (*device_get_count)(int*) = nullptr;
    int (*device_get)(int*, int) = nullptr;
    int (*device_get_name)(char*, int, int) = nullptr;
    int (*primary_ctx_retain)(void**, int) = nullptr;
    int (*ctx_set_current)(void*) = nullptr;
    int (*mem_alloc)(unsigned long long*, size_t) = nullptr;
    int (*mem_free)(unsigned long long) = nullptr;
    int (*memcpy_htod)(unsigned long long, const void*, size_t) = nullptr;
    int (*memcpy_dtoh)(void*, unsigned long long, size_t) = nullptr;
    int (*memcpy_dtod_async)(unsigned long long, unsigned long long, size_t, void*) = nullptr;
    int (*stream_create)(void**, unsigned) = nullptr;
    int (*stream_destroy)(void*) = nullptr;
    int (*event_create)(void**, unsigned) = nullptr;
    int (*event_destroy)(void*) = nullptr;
    int (*event_record)(void*, void*) = nullptr;
    int (*event_synchronize)(void*) = nullptr;
    int (*event_elapsed_time)(float*, void*, void*) = nullptr;
    void* context = nullptr;
    int device = 0;
};

std::string g_why;

Api* load() {
    static Api api;
    static bool ok = [] {
        void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        if (!lib) {
            g_why = "no CUDA device: the CUDA driver (libcuda.so.1) is not installed";
            return false;
        }
        bool all = true;
        auto get = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
            all = all && fn;
        };
        get(api.init, "cuInit");
        get(api.device_get_count, "cuDeviceGetCount");
        get(api.device_get, "cuDeviceGet");
        get(api.device_get_name, "cuDeviceGetName");
        get(api.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
        get(api.ctx_set_current, "cuCtxSetCurrent");
        get(api.mem_alloc, "cuMemAlloc_v2");
        get(api.mem_free, "cuMemFree_v2");
        get(api.memcpy_htod, "cuMemcpyHtoD_v2");
        get(api.memcpy_dtoh, "cuMemcpyDtoH_v2");
        get(api.memcpy_dtod_async, "cuMemcpyDtoDAsync_v2");
        get(api.stream_create, "cuStreamCreate");
        get(api.stream_destroy, "cuStreamDestroy_v2");
        get(api.event_create, "cuEventCreate");
        get(api.event_destroy, "cuEventDestroy_v2");
        get(api.event_record, "cuEventRecord");
        get(api.event_synchronize, "cuEventSynchronize");
        get(api.event_elapsed_time, "cuEventElapsedTime");
        if (!all) {
            g_why = "no CUDA device: the CUDA driver lacks an entry point this program uses";
            return false;
        }
        int count = 0;
        if (api.init(0) != 0 || api.device_get_count(&count) != 0 || count == 0) {
            g_why = "no CUDA device: the driver found none";
            return false;
        }
        if (api.device_get(&api.device, 0) != 0 || api.primary_ctx_retain(&api.context, api.device) != 0) {
            g_why = "no CUDA device: its primary context could not be retained";
            return false;
        }
        return true;
    }();
    return ok ? &api : nullptr;
}

void check(int result, const char* what) {
    if (result != 0) throw std::runtime_error(std::string("CUDA driver call failed: ") + what + " (error " +
                                              std::to_string(result) + ")");
}

unsigned long long dev(const void* p) { return reinterpret_cast<unsigned long long>(p); }

}  // namespace

CudaDevice* CudaDevice::get() {
    static CudaDevice device;
    if (!load()) return nullptr;
    device.make_current();
    return &device;
}

const std::string& CudaDevice::why() {
    load();
    return g_why;
}

void CudaDevice::make_current() { check(load()->ctx_set_current(load()->context), "cuCtxSetCurrent"); }

void* CudaDevice::alloc(size_t bytes) {
    unsigned long long p = 0;
    check(load()->mem_alloc(&p, bytes == 0 ? 1 : bytes), "cuMemAlloc");
    return reinterpret_cast<void*>(p);
}

void CudaDevice::free(void* ptr) { check(load()->mem_free(dev(ptr)), "cuMemFree"); }

void CudaDevice::upload(void* device, const void* host, size_t bytes) {
    check(load()->memcpy_htod(dev(device), host, bytes), "cuMemcpyHtoD");
}

void CudaDevice::download(void* host, const void* device, size_t bytes) {
    check(load()->memcpy_dtoh(host, dev(device), bytes), "cuMemcpyDtoH");
}

void CudaDevice::copy_async(void* dst, const void* src, size_t bytes, void* stream) {
    check(load()->memcpy_dtod_async(dev(dst), dev(src), bytes, stream), "cuMemcpyDtoDAsync");
}

void* CudaDevice::create_stream() {
    void* s = nullptr;
    check(load()->stream_create(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
    return s;
}

void CudaDevice::destroy_stream(void* stream) { check(load()->stream_destroy(stream), "cuStreamDestroy"); }

void* CudaDevice::create_event() {
    void* e = nullptr;
    check(load()->event_create(&e, 0), "cuEventCreate");
    return e;
}

void CudaDevice::destroy_event(void* event) { check(load()->event_destroy(event), "cuEventDestroy"); }
void CudaDevice::record(void* event, void* stream) { check(load()->event_record(event, stream), "cuEventRecord"); }

float CudaDevice::elapsed_ms(void* start, void* end) {
    check(load()->event_synchronize(end), "cuEventSynchronize");
    float ms = 0;
    check(load()->event_elapsed_time(&ms, start, end), "cuEventElapsedTime");
    return ms;
}

std::string CudaDevice::name() {
    char buf[256] = {0};
    check(load()->device_get_name(buf, sizeof buf, load()->device), "cuDeviceGetName");
    return buf;
}

}  // namespace iabn_test
