// Entry point of the schedules: picks the per-target schedule for a pipeline's Funcs.
// GPU schedules arrive with the CUDA issue; until then a GPU target is refused at generation time.
#pragma once

#include "cpu.h"

namespace iabn_sched {

inline void require_cpu(const Halide::Target& target) {
    if (target.has_gpu_feature()) {
        throw std::invalid_argument("iabn: no GPU schedule yet for target " + target.to_string());
    }
}

}  // namespace iabn_sched
