// The runtime's contact points with the Halide runtime: errors, dispatch, threads.
#pragma once

namespace iabn::detail {

// Installs iabn's hooks into the Halide runtime once per process (idempotent, thread-safe): the
// error handler, which hands an error raised in an iabn call to its Call (call.h) and any other
// to the handler installed before, and the x86 dispatch limit (IABN_DISPATCH_LIMIT).
void init_halide_runtime();

// Threads the kernels run on: set_num_threads(), else Halide's default (HL_NUM_THREADS, else
// one per core).
int kernel_threads();
void set_kernel_threads(int n);

}  // namespace iabn::detail
