// The runtime's contact points with the Halide runtime: errors, dispatch, threads.
#pragma once

#include <mutex>
#include <string>

namespace iabn::detail {

// Installs iabn's hooks into the Halide runtime once per process (idempotent, thread-safe).
void init_halide_runtime();

// Threads the kernels run on: set_num_threads(), else Halide's default (HL_NUM_THREADS, else
// one per core).
int kernel_threads();
void set_kernel_threads(int n);

// One kernel call, handed to the kernel as Halide's user_context (the kernels are compiled with
// the user_context feature). Halide passes it to every runtime hook the call reaches, on
// whichever thread of its pool runs the task, so an error raised inside a parallel loop is
// attributed to its call even while other calls run on other threads. Live contexts are
// registered: the error hook only trusts a user_context it finds in the registry (other Halide
// pipelines of the process pass their own, or none).
class KernelCall {
public:
    KernelCall();
    ~KernelCall();
    KernelCall(const KernelCall&) = delete;
    KernelCall& operator=(const KernelCall&) = delete;

    void* user_context() { return this; }
    void add_error(const char* message);
    std::string error() const;

private:
    mutable std::mutex mutex_;
    std::string error_;
};

[[noreturn]] void throw_kernel_error(const char* kernel, int status, const KernelCall& call);

// Runs one kernel call, `call(user_context)`; a non-zero Halide status becomes an iabn::Error
// naming the kernel and carrying Halide's message.
template <typename Call>
void run_kernel(const char* kernel, Call&& call) {
    KernelCall context;
    const int status = call(context.user_context());
    if (status != 0) throw_kernel_error(kernel, status, context);
}

}  // namespace iabn::detail
