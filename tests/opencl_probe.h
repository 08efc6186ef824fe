// Watches what iabn and the Halide runtime inside it ask of OpenCL: every kernel launch (its
// grid), every buffer created (and its size), every call that waits for the device (clFinish,
// clWaitForEvents, a blocking read or write), and can hold launches back (a dry run: the grid of a
// launch over a tensor too large for this machine is recorded, the kernel is not enqueued). Works
// by overriding two weak resolvers in this test binary, Halide's halide_opencl_get_symbol and
// iabn's iabn_device_get_symbol (runtime/device_api.cpp): both hand out wrappers that count.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace iabn_test {

struct Launch {
    std::string kernel;
    size_t global[3] = {1, 1, 1}, local[3] = {1, 1, 1};
    size_t blocks(int d) const { return (global[d] + local[d] - 1) / local[d]; }
};

class OpenClProbe {
public:
    // Starts recording (and, with `dry_run`, holds back every launch); stops when destroyed.
    explicit OpenClProbe(bool dry_run = false);
    ~OpenClProbe();
    OpenClProbe(const OpenClProbe&) = delete;
    OpenClProbe& operator=(const OpenClProbe&) = delete;

    std::vector<Launch> launches() const;
    size_t allocated_bytes() const;  // by Halide and iabn, since the probe started
    size_t buffers_created() const;  // clCreateBuffer calls, by Halide and iabn
    size_t waits() const;            // calls that wait for the device, by Halide and iabn
    bool installed() const;          // whether Halide resolved its OpenCL calls through the probe
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
