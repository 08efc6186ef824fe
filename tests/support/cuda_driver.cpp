#include "cuda_driver.h"

#include "device_api.h"  // the runtime's loader of the CUDA driver

#include <string>

namespace iabn_test {
namespace {

using iabn::detail::cuda_api;
using iabn::detail::cuda_check;
using iabn::detail::cuda_graph_api;

unsigned long long address(const void* p) { return reinterpret_cast<unsigned long long>(p); }

std::string& failure() {
    static std::string why;
    return why;
}

}  // namespace

CudaDevice* CudaDevice::get() {
    static CudaDevice device;
    static const bool ok = [] {
        if (!iabn::has_cuda_kernels()) {
            failure() = "no CUDA kernels in this build (IABN_CUDA=OFF)";
            return false;
        }
        try {
            const auto& api = cuda_api();
            int count = 0;
            if (api.init(0) != 0 || api.device_get_count(&count) != 0 || count == 0) {
                failure() = "no CUDA device: the driver found none";
                return false;
            }
            cuda_check(api.device_get(&device.ordinal_, 0), "cuDeviceGet");
            cuda_check(api.primary_ctx_retain(&device.context_, device.ordinal_), "cuDevicePrimaryCtxRetain");
        } catch (const iabn::Error& e) {
            failure() = std::string("no CUDA device: ") + e.what();
            return false;
        }
        return true;
    }();
    if (!ok) return nullptr;
    device.make_current();
    return &device;
}

const std::string& CudaDevice::why() {
    get();
    return failure();
}

void CudaDevice::make_current() { cuda_check(cuda_api().ctx_set_current(context_), "cuCtxSetCurrent"); }

std::string CudaDevice::name() {
    char buf[256] = {0};
    cuda_check(cuda_api().device_get_name(buf, sizeof buf, ordinal_), "cuDeviceGetName");
    return buf;
}

void* CudaDevice::alloc(size_t bytes) {
    unsigned long long p = 0;
    cuda_check(cuda_api().mem_alloc(&p, bytes == 0 ? 1 : bytes), "cuMemAlloc");
    return reinterpret_cast<void*>(p);
}

void CudaDevice::free(void* memory) { cuda_check(cuda_api().mem_free(address(memory)), "cuMemFree"); }

void CudaDevice::upload(void* memory, const void* host, size_t bytes) {
    cuda_check(cuda_api().memcpy_htod(address(memory), host, bytes), "cuMemcpyHtoD");
}

void CudaDevice::download(void* host, const void* memory, size_t bytes) {
    cuda_check(cuda_api().memcpy_dtoh(host, address(memory), bytes), "cuMemcpyDtoH");
}

void* CudaDevice::create_queue() {
    void* s = nullptr;
    cuda_check(cuda_api().stream_create(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
    return s;
}

void CudaDevice::destroy_queue(void* queue) { cuda_check(cuda_api().stream_destroy(queue), "cuStreamDestroy"); }

void CudaDevice::synchronize(void* queue) { cuda_check(cuda_api().stream_synchronize(queue), "cuStreamSynchronize"); }

void CudaDevice::copy_async(void* dst, const void* src, size_t bytes, void* stream) {
    cuda_check(cuda_api().memcpy_dtod_async(address(dst), address(src), bytes, stream), "cuMemcpyDtoDAsync");
}

void* CudaDevice::create_event() {
    void* e = nullptr;
    cuda_check(cuda_api().event_create(&e, 0), "cuEventCreate");
    return e;
}

void CudaDevice::destroy_event(void* event) { cuda_check(cuda_api().event_destroy(event), "cuEventDestroy"); }

void CudaDevice::record(void* event, void* stream) { cuda_check(cuda_api().event_record(event, stream), "cuEventRecord"); }

float CudaDevice::elapsed_ms(void* start, void* end) {
    cuda_check(cuda_api().event_synchronize(end), "cuEventSynchronize");
    float ms = 0;
    cuda_check(cuda_api().event_elapsed_time(&ms, start, end), "cuEventElapsedTime");
    return ms;
}

void CudaDevice::begin_capture(void* stream) {
    cuda_check(cuda_graph_api().stream_begin_capture(stream, 0 /* CU_STREAM_CAPTURE_MODE_GLOBAL */), "cuStreamBeginCapture_v2");
}

void* CudaDevice::end_capture(void* stream) {
    void* graph = nullptr;
    cuda_check(cuda_graph_api().stream_end_capture(stream, &graph), "cuStreamEndCapture");
    return graph;
}

void* CudaDevice::instantiate(void* graph) {
    void* exec = nullptr;
    cuda_check(cuda_graph_api().graph_instantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags");
    return exec;
}

void CudaDevice::launch_graph(void* graph_exec, void* stream) {
    cuda_check(cuda_graph_api().graph_launch(graph_exec, stream), "cuGraphLaunch");
}

void CudaDevice::destroy_graph_exec(void* graph_exec) {
    cuda_check(cuda_graph_api().graph_exec_destroy(graph_exec), "cuGraphExecDestroy");
}

void CudaDevice::destroy_graph(void* graph) { cuda_check(cuda_graph_api().graph_destroy(graph), "cuGraphDestroy"); }

}  // namespace iabn_test
