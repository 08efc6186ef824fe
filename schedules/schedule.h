// Entry point of the schedules: cpu.h for CPU targets, gpu.h for GPU (CUDA) targets.
#pragma once

#include "cpu.h"
#include "gpu.h"

namespace iabn_sched {

// For the pipelines that have no GPU schedule (the one-pass nchw kernels: a GPU runs the
// two-pass ones, whose reductions spread a channel over many blocks).
inline void require_cpu(const Halide::Target& target) {
    if (target.has_gpu_feature()) {
        throw std::invalid_argument("iabn: this pipeline has no GPU schedule (target " + target.to_string() + ")");
    }
}

}  // namespace iabn_sched
