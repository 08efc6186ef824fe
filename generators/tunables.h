// The tunable schedule numbers (schedules/cpu.h, struct CpuParams) as GeneratorParams, one set per
// kind of CPU schedule: a generator declares the set its schedule reads, and no other, so that
// the tuner searches only numbers that change its code and a params line naming another number
// fails the build (iabn_sched::apply_level_params) instead of being ignored. Defaults are
// CpuParams'.
#pragma once

#include "Halide.h"
#include "cpu.h"
#include "gpu.h"

#include <string>
#include <vector>

namespace iabn_gen {

// No schedule numbers: the per-channel pipelines.
struct NoTunables {
    static std::vector<std::string> names() { return {}; }
    void read(iabn_sched::CpuParams&) const {}
};

// schedule_channel_reduction: the two-pass and synchronized reductions.
struct ReductionTunables {
    Halide::GeneratorParam<int> block{"block", iabn_sched::CpuParams().block};
    Halide::GeneratorParam<int> rows{"rows", iabn_sched::CpuParams().rows};
    Halide::GeneratorParam<int> vectors{"vectors", iabn_sched::CpuParams().vectors};
    Halide::GeneratorParam<int> tasks_per_thread{"tasks_per_thread", iabn_sched::CpuParams().tasks_per_thread};
    Halide::GeneratorParam<int> unroll{"unroll", iabn_sched::CpuParams().unroll};
    Halide::GeneratorParam<int> unroll_channels{"unroll_channels", iabn_sched::CpuParams().unroll_channels};
    static std::vector<std::string> names() {
        return {"block", "rows", "vectors", "tasks_per_thread", "unroll", "unroll_channels"};
    }
    void read(iabn_sched::CpuParams& p) const {
        p.block = block, p.rows = rows, p.vectors = vectors, p.tasks_per_thread = tasks_per_thread;
        p.unroll = unroll, p.unroll_channels = unroll_channels;
    }
};

// schedule_inplace_update: the two-pass element-wise pipelines.
struct UpdateTunables {
    Halide::GeneratorParam<int> block{"block", iabn_sched::CpuParams().block};
    Halide::GeneratorParam<int> rows{"rows", iabn_sched::CpuParams().rows};
    static std::vector<std::string> names() { return {"block", "rows"}; }
    void read(iabn_sched::CpuParams& p) const { p.block = block, p.rows = rows; }
};

// schedule_fused_channels: the one-pass pipelines.
struct FusedTunables {
    Halide::GeneratorParam<int> block{"block", iabn_sched::CpuParams().block};
    Halide::GeneratorParam<int> vectors{"vectors", iabn_sched::CpuParams().vectors};
    Halide::GeneratorParam<int> channels{"channels", iabn_sched::CpuParams().channels};
    static std::vector<std::string> names() { return {"block", "vectors", "channels"}; }
    void read(iabn_sched::CpuParams& p) const { p.block = block, p.vectors = vectors, p.channels = channels; }
};

// The GPU schedules' numbers (schedules/gpu.h, struct GpuParams), passed from schedules/cuda.params
// or opencl.params to the GPU kernels only: a set per kind of GPU schedule, as for the CPU.
struct NoGpuTunables {
    static std::vector<std::string> names() { return {}; }
    void read(iabn_sched::GpuParams&) const {}
};

// schedule_gpu_inplace_update: the applies.
struct GpuUpdateTunables {
    Halide::GeneratorParam<int> threads{"threads", iabn_sched::GpuParams().threads};
    static std::vector<std::string> names() { return {"threads"}; }
    void read(iabn_sched::GpuParams& p) const { p.threads = threads; }
};

// The per-channel kernels (a thread per channel): coefficients, finishes, merges, rows.
struct GpuChannelTunables {
    Halide::GeneratorParam<int> channel_block{"channel_block", iabn_sched::GpuParams().channel_block};
    static std::vector<std::string> names() { return {"channel_block"}; }
    void read(iabn_sched::GpuParams& p) const { p.channel_block = channel_block; }
};

}  // namespace iabn_gen
