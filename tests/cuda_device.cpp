#include "cuda_device.h"

#include <dlfcn.h>

#include <stdexcept>

namespace iabn_test {
namespace {

// The driver API entry points the tests use (CUresult is an int; 0 is success).
struct Api {
    int (*init)(unsigned) = nullptr;
    int (*device_get_count)(int*) = nullptr;
    int (*device_get)(int*, int) = nullptr;
    int (*primary_ctx_retain)(void**, int) = nullptr;
    int (*ctx_set_current)(void*) = nullptr;
    int (*mem_alloc)(unsigned long long*, size_t) = nullptr;
    int (*mem_free)(unsigned long long) = nullptr;
    int (*memcpy_htod)(unsigned long long, const void*, size_t) = nullptr;
    int (*memcpy_dtoh)(void*, unsigned long long, size_t) = nullptr;
    int (*stream_create)(void**, unsigned) = nullptr;
    int (*stream_destroy)(void*) = nullptr;
    void* context = nullptr;
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
        get(api.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
        get(api.ctx_set_current, "cuCtxSetCurrent");
        get(api.mem_alloc, "cuMemAlloc_v2");
        get(api.mem_free, "cuMemFree_v2");
        get(api.memcpy_htod, "cuMemcpyHtoD_v2");
        get(api.memcpy_dtoh, "cuMemcpyDtoH_v2");
        get(api.stream_create, "cuStreamCreate");
        get(api.stream_destroy, "cuStreamDestroy_v2");
        if (!all) {
            g_why = "no CUDA device: the CUDA driver lacks an entry point the tests use";
            return false;
        }
        int count = 0, device = 0;
        if (api.init(0) != 0 || api.device_get_count(&count) != 0 || count == 0) {
            g_why = "no CUDA device: the driver found none";
            return false;
        }
        if (api.device_get(&device, 0) != 0 || api.primary_ctx_retain(&api.context, device) != 0) {
            g_why = "no CUDA device: its primary context could not be retained";
            return false;
        }
        return true;
    }();
    return ok ? &api : nullptr;
}

void check(int result, const char* what) {
    if (result != 0) throw std::runtime_error(std::string("CUDA driver call failed in the test: ") + what);
}

thread_local DeviceMirror* t_mirror = nullptr;

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

void CudaDevice::free(void* ptr) { check(load()->mem_free(reinterpret_cast<unsigned long long>(ptr)), "cuMemFree"); }

void CudaDevice::upload(void* device, const void* host, size_t bytes) {
    check(load()->memcpy_htod(reinterpret_cast<unsigned long long>(device), host, bytes), "cuMemcpyHtoD");
}

void CudaDevice::download(void* host, const void* device, size_t bytes) {
    check(load()->memcpy_dtoh(host, reinterpret_cast<unsigned long long>(device), bytes), "cuMemcpyDtoH");
}

void* CudaDevice::create_stream() {
    void* s = nullptr;
    check(load()->stream_create(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
    return s;
}

void CudaDevice::destroy_stream(void* stream) { check(load()->stream_destroy(stream), "cuStreamDestroy"); }

DeviceMirror::DeviceMirror(iabn::Device device) : on_device_(device == iabn::Device::cuda) {
    if (on_device_) {
        if (!CudaDevice::get()) throw std::logic_error("DeviceMirror: " + CudaDevice::why());
        t_mirror = this;
    }
}

DeviceMirror::~DeviceMirror() {
    if (!on_device_) return;
    t_mirror = nullptr;
    for (const Copy& c : copies_) CudaDevice::get()->free(c.device);
}

DeviceMirror* DeviceMirror::active() { return t_mirror; }

iabn::TensorRef DeviceMirror::ref(Buffer& b) {
    for (const Copy& c : copies_) {
        if (c.host == &b) return b.host_ref_on(iabn::Device::cuda, c.device);
    }
    void* d = CudaDevice::get()->alloc(b.bytes());
    CudaDevice::get()->upload(d, b.data(), b.bytes());
    copies_.push_back({&b, d});
    return b.host_ref_on(iabn::Device::cuda, d);
}

void DeviceMirror::download() {
    for (const Copy& c : copies_) CudaDevice::get()->download(c.host->data(), c.device, c.host->bytes());
}

}  // namespace iabn_test

namespace iabn_test {

iabn::TensorRef Buffer::ref() {
    if (DeviceMirror* m = DeviceMirror::active()) return m->ref(*this);
    return host_ref_on(iabn::Device::cpu, data());
}

}  // namespace iabn_test
