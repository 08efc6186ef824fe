// The AOT kernels of one (dtype, layout): the runtime's dispatch table.
// Which kernels exist is decided by the build (cmake/IabnKernels.cmake writes the list).
#pragma once

#include "iabn/iabn.h"
#include "iabn_kernel_headers.h"  // generated: one header per instantiated kernel
#include "plan.h"                  // View

namespace iabn::detail {

// The GPU-only kernels (generators/gpu_*_generator.cpp: the training passes' partials and
// finishes, the synchronized passes' rows), which have no CPU instantiation to take the signature
// from: checked against the generated ones where the table stores them.
using HalideBuf = halide_buffer_t*;
using GpuForwardPartials = int (*)(const void*, HalideBuf x, int32_t steps, int32_t row_steps, HalideBuf partials);
using GpuForwardFinish = int (*)(const void*, HalideBuf partials, HalideBuf weight, HalideBuf bias, HalideBuf running_mean,
                                 HalideBuf running_var, double epsilon, double momentum, bool unbiased_running_var,
                                 bool abs_weight, HalideBuf saved_mean, HalideBuf saved_invstd,
                                 HalideBuf new_running_mean, HalideBuf new_running_var, HalideBuf pivot,
                                 HalideBuf scale, HalideBuf shift);
using GpuBackwardPartials = int (*)(const void*, HalideBuf z, HalideBuf dz, HalideBuf weight, HalideBuf bias, double epsilon,
                                    bool abs_weight, int32_t activation, double activation_param, int32_t steps,
                                    int32_t row_steps, HalideBuf partials);
// The resident variant's first kernels (nchw): a block per channel, partials and finish in one.
using GpuForwardResident = int (*)(const void*, HalideBuf x, int32_t steps, int32_t row_steps, HalideBuf weight,
                                   HalideBuf bias, HalideBuf running_mean, HalideBuf running_var, double epsilon,
                                   double momentum, bool unbiased_running_var, bool abs_weight, HalideBuf saved_mean,
                                   HalideBuf saved_invstd, HalideBuf new_running_mean, HalideBuf new_running_var,
                                   HalideBuf pivot, HalideBuf scale, HalideBuf shift);
using GpuBackwardResident = int (*)(const void*, HalideBuf z, HalideBuf dz, HalideBuf weight, HalideBuf bias,
                                    HalideBuf saved_invstd, HalideBuf running_var, double epsilon, bool abs_weight,
                                    bool batch_stats, int32_t activation, double activation_param, int32_t steps,
                                    int32_t row_steps, HalideBuf weight_grad, HalideBuf bias_grad, HalideBuf grad_scale,
                                    HalideBuf grad_mean_dy, HalideBuf grad_mean_dy_xhat, HalideBuf xhat_bias,
                                    HalideBuf xhat_inv_g);
using GpuForwardRow = int (*)(const void*, HalideBuf partials, HalideBuf row);
using GpuBackwardRow = int (*)(const void*, HalideBuf partials, HalideBuf weight, double epsilon, bool abs_weight,
                               HalideBuf weight_grad, HalideBuf bias_grad, HalideBuf row);
using GpuBackwardFinish = int (*)(const void*, HalideBuf partials, HalideBuf weight, HalideBuf bias, HalideBuf saved_invstd,
                                  HalideBuf running_var, double epsilon, bool abs_weight, bool batch_stats,
                                  HalideBuf weight_grad, HalideBuf bias_grad, HalideBuf grad_scale,
                                  HalideBuf grad_mean_dy, HalideBuf grad_mean_dy_xhat, HalideBuf xhat_bias,
                                  HalideBuf xhat_inv_g);

// Every instantiation of a generator has the same signature; the f32 nchw one is always built.
struct Kernels {
    decltype(&iabn_forward_stats_f32_nchw) forward_stats = nullptr;
    decltype(&iabn_forward_apply_f32_nchw) forward_apply = nullptr;
    // GPUs: the applies on 128-bit vectors (plan.h, gpu_apply_vector(); null on the CPU).
    decltype(&iabn_forward_apply_f32_nchw) forward_apply_vector = nullptr;
    decltype(&iabn_backward_apply_f32_nchw) backward_apply_vector = nullptr;
    decltype(&iabn_backward_reduce_f32_nchw) backward_reduce = nullptr;
    decltype(&iabn_backward_apply_f32_nchw) backward_apply = nullptr;
    decltype(&iabn_global_coeffs_f32_any) global_coeffs = nullptr;
    // Statistics across processes: the local partials, and the merge of every process's.
    decltype(&iabn_forward_partials_f32_nchw) forward_partials = nullptr;
    decltype(&iabn_forward_merge_f32_any) forward_merge = nullptr;
    decltype(&iabn_backward_partials_f32_nchw) backward_partials = nullptr;
    decltype(&iabn_backward_merge_f32_any) backward_merge = nullptr;
    // One pass per channel; nchw only (null for channels-last).
    decltype(&iabn_forward_fused_f32_nchw) forward_fused = nullptr;
    decltype(&iabn_backward_fused_f32_nchw) backward_fused = nullptr;
    // GPU training passes, three kernels each: partials, finish, then forward_apply or
    // backward_apply (null on the CPU, which has forward_stats and backward_reduce instead).
    GpuForwardPartials gpu_forward_partials = nullptr;
    GpuForwardFinish gpu_forward_finish = nullptr;
    GpuBackwardPartials gpu_backward_partials = nullptr;
    // Channels-last partials with 4, 8 or 16 channel lanes (fewer than 32 channels); pick with
    // gpu_partials_for().
    GpuForwardPartials gpu_forward_partials_c4 = nullptr, gpu_forward_partials_c8 = nullptr,
                       gpu_forward_partials_c16 = nullptr;
    GpuBackwardPartials gpu_backward_partials_c4 = nullptr, gpu_backward_partials_c8 = nullptr,
                        gpu_backward_partials_c16 = nullptr;
    // nchw partials on 128-bit vectors (the tensor wrapped as the vector applies take it).
    GpuForwardPartials gpu_forward_partials_vector = nullptr;
    GpuBackwardPartials gpu_backward_partials_vector = nullptr;
    GpuBackwardFinish gpu_backward_finish = nullptr;
    // The resident variant (nchw GPU kernels only; plan.h, gpu_resident(), says when): the first
    // kernel does partials and finish, a block per channel; then the apply. Two kernels a pass.
    GpuForwardResident gpu_forward_resident = nullptr;
    GpuBackwardResident gpu_backward_resident = nullptr;
    // A synchronized pass's row of partials from the block partials (null on the CPU, which has
    // forward_partials and backward_partials instead).
    GpuForwardRow gpu_forward_row = nullptr;
    GpuBackwardRow gpu_backward_row = nullptr;
};

// The kernels for a tensor dtype, a view layout and a device; throws iabn::Error if this build
// has none. (The GPU kernels have no one-pass variants: a GPU spreads each channel's reduction
// over many blocks instead, gpu_*.)
const Kernels& kernels_for(DType dtype, Layout kernel_layout, Device device = Device::cpu);

// The GPU tuner's way in (tools/tune/gpu): the table entry of (dtype, layout, device) itself, in
// which it swaps a prebuilt candidate kernel for the one the build chose, so that the calls it
// times run the runtime's own checks, plan and launches. Nothing in the library writes it.
Kernels& kernels_entry_for_tuning(DType dtype, Layout kernel_layout, Device device);

// The block partials kernels of a view: its partition's channel lanes' (plan.h, gpu_partition()),
// or, where the call's tensors are wrapped as vectors (`vector` > 1: plan.h, gpu_apply_vector())
// and the view is nchw, the vector ones; `vector` says which ran (1: the scalar ones).
struct GpuPartials {
    GpuForwardPartials forward;
    GpuBackwardPartials backward;
    int vector = 1;
    // The kernels' `steps` for partition p (the vector ones step over vectors).
    int32_t steps(const iabn_sched::GpuPartition& p) const {
        return vector > 1 ? iabn_sched::gpu_vector_steps(p, vector) : p.steps;
    }
};
GpuPartials gpu_partials_for(const Kernels& k, const View& v, int vector);

// Whether a training pass runs the one-pass kernels: `k` has them and plan.h's rule says so for
// the kernel threads (IABN_ONE_PASS=0 says no).
bool use_fused(const Kernels& k, int64_t channels);

}  // namespace iabn::detail
