// The CUDA driver API, loaded at run time (programs using it build and start where there is no
// driver): the first GPU with its primary context, memory, copies, streams and events. Used by the
// test suite (cuda_device.h) and the GPU benchmark (bench/gpu); iabn itself needs none of it.
#pragma once

#include <cstddef>
#include <string>

namespace iabn_test {

// nullptr from get() when this machine has no usable CUDA device (why() says why).
class CudaDevice {
public:
    static CudaDevice* get();
    static const std::string& why();

    void make_current();  // the primary context, on the calling thread (get() does it for its own)
    void* alloc(size_t bytes);
    void free(void* ptr);
    void upload(void* device, const void* host, size_t bytes);
    void download(void* host, const void* device, size_t bytes);
    void copy_async(void* dst, const void* src, size_t bytes, void* stream);  // device to device
    void* create_stream();  // non-blocking
    void destroy_stream(void* stream);
    void* create_event();
    void destroy_event(void* event);
    void record(void* event, void* stream);
    float elapsed_ms(void* start, void* end);  // waits for `end`
    std::string name();
};

}  // namespace iabn_test
