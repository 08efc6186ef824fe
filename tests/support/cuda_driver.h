// The first CUDA GPU, with its primary context, as a TestDevice (device_driver.h), plus the
// events and CUDA graphs the GPU benchmark times with.
#pragma once

#include "device_driver.h"

namespace iabn_test {

class CudaDevice final : public TestDevice {
public:
    // nullptr when this machine has no usable CUDA device (why() says why).
    static CudaDevice* get();
    static const std::string& why();

    iabn::Device device() const override { return iabn::Device::cuda; }
    std::string name() override;
    void* alloc(size_t bytes) override;
    void free(void* memory) override;
    void upload(void* memory, const void* host, size_t bytes) override;
    void download(void* host, const void* memory, size_t bytes) override;
    void* create_queue() override;  // a non-blocking stream
    void destroy_queue(void* queue) override;
    void* default_queue() override { return nullptr; }
    void synchronize(void* queue) override;
    void set_queue(iabn::Options& options, void* queue) override { options.cuda_stream = queue; }

    void make_current();  // the primary context, on the calling thread (get() does it for its own)
    void copy_async(void* dst, const void* src, size_t bytes, void* stream);  // device to device
    void* create_event();
    void destroy_event(void* event);
    void record(void* event, void* stream);
    float elapsed_ms(void* start, void* end);  // waits for `end`

    // CUDA graphs (the GPU benchmark's replay timing). The driver's graph entry points are
    // resolved from libcuda.so.1 at their first use; a driver without them is an iabn::Error.
    // Capture uses CU_STREAM_CAPTURE_MODE_GLOBAL, as torch.cuda.graph does by default: a call
    // that would read or wait on the host while capturing fails instead of being left out.
    void begin_capture(void* stream);           // cuStreamBeginCapture_v2
    void* end_capture(void* stream);            // cuStreamEndCapture: the captured CUgraph
    void* instantiate(void* graph);             // cuGraphInstantiateWithFlags: a CUgraphExec
    void launch_graph(void* graph_exec, void* stream);  // cuGraphLaunch
    void destroy_graph_exec(void* graph_exec);  // cuGraphExecDestroy
    void destroy_graph(void* graph);            // cuGraphDestroy

private:
    CudaDevice() = default;
    void* context_ = nullptr;
    int ordinal_ = 0;
};

}  // namespace iabn_test
