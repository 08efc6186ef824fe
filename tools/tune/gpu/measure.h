// The GPU tuner's bench: one shape in one dtype and layout on a device, its training passes
// called through iabn's public API (so the runtime's checks, plan and launches are the ones timed),
// timed per call and read back for the candidates' check.
#pragma once

#include "candidates.h"  // Pass
#include "device_driver.h"  // tests/support/device_driver.h: memory and queues of CUDA or OpenCL

#include <iabn/iabn.h>

#include <cstdint>
#include <vector>

namespace iabn_tune_gpu {

using Dims = std::vector<int64_t>;  // logical [N, C, H, W]

class PassBench {
public:
    PassBench(iabn_test::TestDevice& device, const Dims& nchw, iabn::DType dtype, iabn::Layout layout);
    ~PassBench();
    PassBench(const PassBench&) = delete;
    PassBench& operator=(const PassBench&) = delete;

    // Milliseconds per call of `calls` back-to-back calls of the pass on the device's default
    // queue, from the first call's start on the host to the end of the queue's work. Repeated
    // calls run on what the previous left (bench/gpu/iabn_bench_gpu.cpp, run_case, says why the
    // values stay finite: the same inputs and scale are used here).
    double time(Pass pass, int calls);

    // The pass's outputs from the same inputs every time (the forward's z, saved mean and
    // invstd; the backward's dx, weight and bias gradients after a forward), as doubles.
    std::vector<double> outputs(Pass pass);

private:
    void forward();
    void backward();
    void* alloc(size_t bytes);
    iabn::TensorRef channel(float value);

    iabn_test::TestDevice& device_;
    iabn::DType dtype_;
    Dims shape_;  // as declared in `layout`
    int64_t n_, c_;
    iabn::Options options_;
    std::vector<unsigned char> x_host_, dz_host_;
    void *x_ = nullptr, *dz_ = nullptr;
    std::vector<void*> owned_;
    iabn::ChannelState state_;
    iabn::ParamGrads grads_;
};

// ||a - b|| / ||b|| (0 where both are 0; infinite where the sizes differ or a value is not finite).
double relative_error(const std::vector<double>& a, const std::vector<double>& b);

// What two kernels that compute the same expressions may differ by in `dtype`: four units of its
// rounding (they should agree exactly; a schedule must not change the arithmetic).
double tolerance(iabn::DType dtype);

}  // namespace iabn_tune_gpu
