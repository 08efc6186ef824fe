// One forward or backward call as the Halide runtime sees it.
//
// The kernels are compiled with Halide's user_context feature: every kernel and every device
// operation of a call gets the call's Call object as its user_context, and Halide passes it on
// to every runtime hook the call reaches (errors, device contexts and queues), on whichever
// thread of its pool runs a task. So the hooks can tell an iabn call from any other Halide
// pipeline of the process, and find what belongs to the call: the errors raised in its kernels
// and, for a device call, the caller's context and queue. Live calls are registered; a hook
// trusts only a user_context it finds in the registry (another pipeline passes its own, or none).
#pragma once

#include "iabn/iabn.h"

#include <mutex>
#include <thread>
#include <string>

namespace iabn::detail {

class Call {
public:
    explicit Call(Device device);
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

    void* user_context() { return this; }
    Device device() const { return device_; }

    // The live call whose user_context this is, or nullptr.
    static Call* find(void* user_context);

    // The device API's context and queue (a CUcontext and CUstream, or a cl_context and
    // cl_command_queue), set by the device backend when the call begins.
    void* device_context = nullptr;
    void* device_queue = nullptr;
    // Set where the queue handle names a different stream on each thread (CUDA's
    // CU_STREAM_PER_THREAD): the thread whose stream it is.
    std::thread::id queue_thread{};

    void add_error(const char* message);

    // Runs one kernel, `kernel_call(user_context)`; a non-zero Halide status becomes an
    // iabn::Error naming the kernel and carrying the message Halide raised for it.
    template <typename KernelCall>
    void run(const char* kernel, KernelCall&& kernel_call) {
        clear_errors();
        const int status = kernel_call(user_context());
        if (status != 0) fail(kernel, status);
    }

private:
    void clear_errors();
    [[noreturn]] void fail(const char* kernel, int status);

    Device device_;
    std::mutex mutex_;
    std::string errors_;
};

}  // namespace iabn::detail
