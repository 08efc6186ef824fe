// The runtime's contact points with the Halide runtime: errors, dispatch, threads.
#pragma once

#include <string>

namespace iabn::detail {

// Installs iabn's hooks into the Halide runtime once per process (idempotent, thread-safe).
void init_halide_runtime();

// Threads the kernels run on: set_num_threads(), else Halide's default (HL_NUM_THREADS, else
// one per core).
int kernel_threads();
void set_kernel_threads(int n);

void throw_kernel_error(const char* kernel, int status);
void begin_kernel_call();
void end_kernel_call();

// Runs one kernel call; a non-zero Halide status becomes an iabn::Error naming the kernel and
// carrying Halide's message.
template <typename Call>
void run_kernel(const char* kernel, Call&& call) {
    begin_kernel_call();
    const int status = call();
    end_kernel_call();
    if (status != 0) throw_kernel_error(kernel, status);
}

}  // namespace iabn::detail
