// The Halide buffer descriptors that wrap the caller's memory, as the 3-D view of plan.h or as
// per-channel vectors, without copying it.
#pragma once

#include "call.h"
#include "plan.h"  // View, make_view

#include "iabn/iabn.h"

#include <HalideBuffer.h>

namespace iabn::detail {

// Descriptors of the caller's memory. Host memory is used as it is; device memory (the data of
// a Device::cuda or Device::opencl buffer) is wrapped for the call's device, with no host
// memory, and detached when the last copy of the descriptor is destroyed.
Halide::Runtime::Buffer<void> tensor_buffer(const TensorRef& t, const View& v, Call& call);
// A GPU apply's vector view of t (plan.h, gpu_apply_vector(); generators/tensor_view.h): `vector`
// lanes, the dense dim in vectors, then the other dims.
Halide::Runtime::Buffer<void> vector_buffer(const TensorRef& t, const View& v, int vector, Call& call);
// Whether every tensor's memory is 16-byte aligned for the call's device (a cl_mem always is).
bool vector_aligned(std::initializer_list<const TensorRef*> tensors, Call& call);
Halide::Runtime::Buffer<void> channel_buffer(const TensorRef& t, int64_t channels, Call& call);
// The f64 partials of a synchronized pass: [width] (rows == 0) or the gathered [rows, width],
// as Halide's (i, p).
Halide::Runtime::Buffer<void> sync_buffer(const TensorRef& t, int64_t width, int64_t rows, Call& call);
// A GPU pass's block partials (k, c, sb, nb) in f64 (generators/block_partials.h), over memory of
// gpu_block_values x channels x blocks values.
Halide::Runtime::Buffer<void> partials_buffer(void* data, const iabn_sched::GpuPartition& p, int64_t channels,
                                              Call& call);
// The same over memory given as a pointer (the call's own scratch, host or device).
Halide::Runtime::Buffer<void> channel_buffer(void* data, DType dtype, int64_t channels, Call& call);

}  // namespace iabn::detail
