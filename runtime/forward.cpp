// iabn::forward, and the synchronized forward's two halves (forward_partials, forward_finish):
// validate, pick the kernels, wrap the buffers, call.
// The buffers are bound as plan.h's wiring() states (the tuner binds its candidates by it).
#include "call.h"
#include "halide_glue.h"
#include "kernels.h"
#include "scratch.h"
#include "validate.h"

namespace iabn {
namespace {

// A forward's buffers as its kernels take them (the caller's, or stand-ins from the scratch).
struct ForwardBuffers {
    Halide::Runtime::Buffer<void> x, weight, bias, running_mean, running_var, saved_mean, saved_invstd;
    Halide::Runtime::Buffer<void> pivot, scale, shift;  // the apply's coefficients
    // x as the vector kernels' view (plan.h, gpu_apply_vector()), where they run.
    Halide::Runtime::Buffer<void> x_vector;
    int vector() const { return x_vector.dimensions() != 0 ? x_vector.dim(0).extent() : 1; }  // elements a vector
    bool abs_weight;
};

ForwardBuffers wrap(const TensorRef& x, const ChannelState& state, const Options& options, const detail::Checked& ck,
                    const detail::Kernels& k, detail::Scratch& scratch, detail::Call& call) {
    auto given = [&](const TensorRef& t) { return detail::channel_buffer(t, ck.view.c, call); };
    ForwardBuffers b;
    b.x = detail::tensor_buffer(x, ck.view, call);
    b.weight = scratch.or_filled(state.weight, 1.0);
    // A missing weight means g = 1: the |weight| + epsilon convention applies to a given weight.
    b.abs_weight = options.abs_weight && state.weight.data;
    b.bias = scratch.or_filled(state.bias, 0.0);
    b.running_mean = given(state.running_mean);
    b.running_var = given(state.running_var);
    b.saved_mean = given(state.saved_mean);  // written with batch statistics only
    b.saved_invstd = given(state.saved_invstd);
    const int vector = detail::gpu_apply_vector(ck.view, x.dtype, detail::vector_aligned({&x}, call),
                                                k.forward_apply_vector);
    if (vector > 1) b.x_vector = detail::vector_buffer(x, ck.view, vector, call);
    return b;
}

void apply(const detail::Kernels& k, ForwardBuffers& b, const Options& options, detail::Call& call) {
    const bool vector = b.vector() > 1;  // (wrapped: the vector apply runs)
    call.run("forward_apply", [&](void* uc) {
        return (vector ? k.forward_apply_vector : k.forward_apply)(
            uc, b.pivot, b.scale, b.shift, static_cast<int>(options.activation), options.activation_param,
            vector ? b.x_vector : b.x);
    });
}

}  // namespace

void forward(const TensorRef& x, const ChannelState& state, const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(x.device);  // first: it outlives every buffer of the call
    const detail::Checked ck = detail::validate_forward(x, state, options, call);
    const detail::Kernels& k = *ck.kernels;
    const int64_t channels = ck.view.c;
    detail::Scratch scratch(ck, options, call);
    ForwardBuffers b = wrap(x, state, options, ck, k, scratch, call);

    if (ck.batch_stats && detail::use_fused(k, channels)) {  // (one-pass kernels are CPU only)
        call.run("forward_fused", [&](void* uc) {
            return k.forward_fused(uc, b.x, b.weight, b.bias, options.epsilon, options.momentum,
                                   options.unbiased_running_var, b.abs_weight, static_cast<int>(options.activation),
                                   options.activation_param, b.x, b.saved_mean, b.saved_invstd, b.running_mean,
                                   b.running_var);
        });
        return;
    }
    b.pivot = scratch.output(), b.scale = scratch.output(), b.shift = scratch.output();

    if (ck.batch_stats && detail::gpu_resident(ck.view, k.gpu_forward_resident)) {  // GPUs, resident: 2 kernels
        const iabn_sched::GpuPartition p = detail::gpu_resident_partition(ck.view);
        call.run("gpu_forward_resident", [&](void* uc) {
            return k.gpu_forward_resident(uc, b.x, p.steps, p.row_steps, b.weight, b.bias, b.running_mean,
                                          b.running_var, options.epsilon, options.momentum,
                                          options.unbiased_running_var, b.abs_weight, b.saved_mean, b.saved_invstd,
                                          b.running_mean, b.running_var, b.pivot, b.scale, b.shift);
        });
    } else if (ck.batch_stats && k.gpu_forward_partials) {  // GPUs: partials, finish, apply
        const iabn_sched::GpuPartition p = detail::gpu_partition(ck.view);
        const detail::GpuPartials kp = detail::gpu_partials_for(k, ck.view, b.vector());
        auto partials = scratch.partials(p);
        call.run("gpu_forward_partials", [&](void* uc) {
            return kp.forward(uc, kp.vector > 1 ? b.x_vector : b.x, kp.steps(p), p.row_steps, partials);
        });
        call.run("gpu_forward_finish", [&](void* uc) {
            return k.gpu_forward_finish(uc, partials, b.weight, b.bias, b.running_mean, b.running_var, options.epsilon,
                                        options.momentum, options.unbiased_running_var, b.abs_weight, b.saved_mean,
                                        b.saved_invstd, b.running_mean, b.running_var, b.pivot, b.scale, b.shift);
        });
    } else if (ck.batch_stats) {
        call.run("forward_stats", [&](void* uc) {
            return k.forward_stats(uc, b.x, b.weight, b.bias, options.epsilon, options.momentum,
                                   options.unbiased_running_var, b.abs_weight, detail::kernel_threads(), b.saved_mean,
                                   b.saved_invstd, b.running_mean, b.running_var, b.pivot, b.scale, b.shift);
        });
    } else {
        auto unused_scale = scratch.output(), unused_bias = scratch.output(), unused_inv_g = scratch.output();
        call.run("global_coeffs", [&](void* uc) {
            return k.global_coeffs(uc, b.running_mean, b.running_var, b.weight, b.bias, options.epsilon, b.abs_weight,
                                   b.pivot, b.scale, b.shift, unused_scale, unused_bias, unused_inv_g);
        });
    }
    apply(k, b, options, call);
}

int64_t sync_partials_size(int64_t channels) { return 2 * channels + 1; }

void forward_partials(const TensorRef& x, const TensorRef& partials, const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(x.device);
    const detail::Checked ck = detail::validate_forward_partials(x, partials, options, call);
    const detail::Kernels& k = *ck.kernels;
    auto xv = detail::tensor_buffer(x, ck.view, call);
    auto out = detail::sync_buffer(partials, sync_partials_size(ck.view.c), 0, call);
    if (k.gpu_forward_row) {  // GPUs: the block partials, then the row from them
        detail::Scratch scratch(ck, options, call);
        const iabn_sched::GpuPartition p = detail::gpu_partition(ck.view);
        const detail::GpuPartials kp = detail::gpu_partials_for(k, ck.view, 1);  // (x is not wrapped as vectors here)
        auto blocks = scratch.partials(p);
        call.run("gpu_forward_partials", [&](void* uc) {
            return kp.forward(uc, xv, p.steps, p.row_steps, blocks);
        });
        call.run("gpu_forward_row", [&](void* uc) { return k.gpu_forward_row(uc, blocks, out); });
        return;
    }
    call.run("forward_partials",
             [&](void* uc) { return k.forward_partials(uc, xv, detail::kernel_threads(), out); });
}

void forward_finish(const TensorRef& x, const ChannelState& state, const TensorRef& gathered, const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(x.device);
    const detail::Checked ck = detail::validate_forward_finish(x, state, gathered, options, call);
    const detail::Kernels& k = *ck.kernels;
    detail::Scratch scratch(ck, options, call);
    ForwardBuffers b = wrap(x, state, options, ck, k, scratch, call);
    auto rows = detail::sync_buffer(gathered, sync_partials_size(ck.view.c), ck.processes, call);
    b.pivot = scratch.output(), b.scale = scratch.output(), b.shift = scratch.output();
    call.run("forward_merge", [&](void* uc) {
        return k.forward_merge(uc, rows, b.weight, b.bias, b.running_mean, b.running_var, options.epsilon,
                               options.momentum, options.unbiased_running_var, b.abs_weight, b.saved_mean,
                               b.saved_invstd, b.running_mean, b.running_var, b.pivot, b.scale, b.shift);
    });
    apply(k, b, options, call);
}

}  // namespace iabn
