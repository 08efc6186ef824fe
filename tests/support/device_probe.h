// Watches what iabn and the Halide runtime inside it ask of OpenCL and CUDA: every kernel launch
// (its grid), every device allocation (and its size), every call that waits for the device
// (OpenCL: clFinish, clWaitForEvents, a blocking read or write; CUDA: a stream, context or event
// synchronization, a synchronous copy, cuMemFree), and can hold OpenCL launches back (a dry run:
// the grid of a launch over a tensor too large for this machine is recorded, the kernel is not
// enqueued). Works by overriding three weak resolvers in this test binary, Halide's
// halide_opencl_get_symbol and halide_cuda_get_symbol, and iabn's iabn_device_get_symbol
// (runtime/device_api.cpp): they hand out wrappers that count.
#pragma once

#include "iabn/iabn.h"

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace iabn_test {

struct Launch {
    std::string kernel;  // (OpenCL; empty on CUDA)
    size_t global[3] = {1, 1, 1}, local[3] = {1, 1, 1};
    size_t blocks(int d) const { return (global[d] + local[d] - 1) / local[d]; }
};

class DeviceProbe {
public:
    // Starts recording (and, with `dry_run`, holds back every launch); stops when destroyed.
    explicit DeviceProbe(bool dry_run = false);  // (dry runs: OpenCL only)
    ~DeviceProbe();
    DeviceProbe(const DeviceProbe&) = delete;
    DeviceProbe& operator=(const DeviceProbe&) = delete;

    std::vector<Launch> launches() const;
    size_t allocated_bytes() const;  // by Halide and iabn, since the probe started
    size_t buffers_created() const;  // device allocations, by Halide and iabn
    size_t waits() const;            // calls that wait for the device, by Halide and iabn
    // Whether Halide resolved its launches of `device` (opencl or cuda) through the probe.
    bool installed(iabn::Device device = iabn::Device::opencl) const;
};

// Entry points the tests need beyond the runtime's table (runtime/device_api.h): an event that
// holds a queue back until the test releases it.
struct OpenClEvents {
    void* (*create_user_event)(void* context, int* error);
    int (*set_user_event_status)(void* event, int status);
    int (*enqueue_barrier_with_wait_list)(void* queue, unsigned count, void* const* events, void** event);
    int (*release_event)(void* event);
    int (*get_command_queue_info)(void* queue, unsigned name, size_t size, void* value, size_t* size_ret);
};
const OpenClEvents& opencl_events();

}  // namespace iabn_test
