// iabn::backward, and the synchronized backward's two halves (backward_partials,
// backward_finish): validate, pick the kernels, wrap the buffers, call.
// The buffers are bound as plan.h's wiring() states (the tuner binds its candidates by it).
#include "call.h"
#include "halide_glue.h"
#include "kernels.h"
#include "scratch.h"
#include "validate.h"

namespace iabn {
namespace {

// A backward's buffers as its kernels take them (the caller's, or stand-ins from the scratch).
struct BackwardBuffers {
    Halide::Runtime::Buffer<void> z, dz, weight, bias, invstd, running_var;
    // The apply's coefficients.
    Halide::Runtime::Buffer<void> grad_scale, mean_dy, mean_dy_xhat, xhat_bias, xhat_inv_g;
    // As the vector kernels' views (plan.h, gpu_apply_vector()), where they run.
    Halide::Runtime::Buffer<void> z_vector, dz_vector;
    bool abs_weight;
    int vector() const { return z_vector.dimensions() != 0 ? z_vector.dim(0).extent() : 1; }  // elements a vector
};

BackwardBuffers wrap(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const Options& options,
                     const detail::Checked& ck, const detail::Kernels& k, detail::Scratch& scratch, detail::Call& call) {
    BackwardBuffers b;
    b.z = detail::tensor_buffer(z, ck.view, call);
    b.dz = detail::tensor_buffer(dz, ck.view, call);
    b.weight = scratch.or_filled(state.weight, 1.0);
    // A missing weight means g = 1: the |weight| + epsilon convention applies to a given weight.
    b.abs_weight = options.abs_weight && state.weight.data;
    b.bias = scratch.or_filled(state.bias, 0.0);
    // The statistics the forward normalized with: saved (batch) or running (global).
    b.invstd = scratch.or_filled(ck.batch_stats ? state.saved_invstd : TensorRef{}, 0.0);
    b.running_var = scratch.or_filled(ck.batch_stats ? TensorRef{} : state.running_var, 1.0);
    const int vector = detail::gpu_apply_vector(ck.view, z.dtype, detail::vector_aligned({&z, &dz}, call),
                                                k.backward_apply_vector);
    if (vector > 1) {
        b.z_vector = detail::vector_buffer(z, ck.view, vector, call);
        b.dz_vector = detail::vector_buffer(dz, ck.view, vector, call);
    }
    return b;
}

void outputs_for_apply(BackwardBuffers& b, detail::Scratch& scratch) {
    b.grad_scale = scratch.output(), b.mean_dy = scratch.output(), b.mean_dy_xhat = scratch.output();
    b.xhat_bias = scratch.output(), b.xhat_inv_g = scratch.output();
}

void apply(const detail::Kernels& k, BackwardBuffers& b, bool batch_stats, const Options& options,
           detail::Call& call) {
    const bool vector = b.vector() > 1;  // (wrapped: the vector apply runs)
    call.run("backward_apply", [&](void* uc) {
        return (vector ? k.backward_apply_vector : k.backward_apply)(
            uc, vector ? b.z_vector : b.z, b.grad_scale, b.mean_dy, b.mean_dy_xhat, b.xhat_bias, b.xhat_inv_g,
            batch_stats, static_cast<int>(options.activation), options.activation_param, vector ? b.dz_vector : b.dz);
    });
}

}  // namespace

void backward(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const ParamGrads& grads,
              const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(z.device);  // first: it outlives every buffer of the call
    const detail::Checked ck = detail::validate_backward(z, dz, state, grads, options, call);
    const detail::Kernels& k = *ck.kernels;
    const int64_t channels = ck.view.c;
    detail::Scratch scratch(ck, options, call);
    BackwardBuffers b = wrap(z, dz, state, options, ck, k, scratch, call);
    auto weight_grad = scratch.or_filled(grads.weight_grad, 0.0);
    auto bias_grad = scratch.or_filled(grads.bias_grad, 0.0);
    const int act = static_cast<int>(options.activation);

    if (detail::use_fused(k, channels)) {
        call.run("backward_fused", [&](void* uc) {
            return k.backward_fused(uc, b.z, b.dz, b.weight, b.bias, b.invstd, b.running_var, options.epsilon,
                                    b.abs_weight, ck.batch_stats, act, options.activation_param, b.dz, weight_grad,
                                    bias_grad);
        });
        return;
    }
    outputs_for_apply(b, scratch);

    // The sums over the tensor are needed for batch statistics, or for parameter gradients.
    const bool sums = ck.batch_stats || grads.weight_grad.data || grads.bias_grad.data;
    if (sums && detail::gpu_resident(ck.view, k.gpu_backward_resident)) {  // GPUs, resident: 2 kernels
        const iabn_sched::GpuPartition p = detail::gpu_resident_partition(ck.view);
        call.run("gpu_backward_resident", [&](void* uc) {
            return k.gpu_backward_resident(uc, b.z, b.dz, b.weight, b.bias, b.invstd, b.running_var, options.epsilon,
                                           b.abs_weight, ck.batch_stats, act, options.activation_param, p.steps,
                                           p.row_steps, weight_grad, bias_grad, b.grad_scale, b.mean_dy,
                                           b.mean_dy_xhat, b.xhat_bias, b.xhat_inv_g);
        });
    } else if (sums && k.gpu_backward_partials) {  // GPUs: partials, finish, apply
        const iabn_sched::GpuPartition p = detail::gpu_partition(ck.view);
        const detail::GpuPartials kp = detail::gpu_partials_for(k, ck.view, b.vector());
        auto partials = scratch.partials(p);
        call.run("gpu_backward_partials", [&](void* uc) {
            return kp.backward(uc, kp.vector > 1 ? b.z_vector : b.z, kp.vector > 1 ? b.dz_vector : b.dz, b.weight,
                               b.bias, options.epsilon, b.abs_weight, act, options.activation_param, kp.steps(p),
                               p.row_steps, partials);
        });
        call.run("gpu_backward_finish", [&](void* uc) {
            return k.gpu_backward_finish(uc, partials, b.weight, b.bias, b.invstd, b.running_var, options.epsilon,
                                         b.abs_weight, ck.batch_stats, weight_grad, bias_grad, b.grad_scale, b.mean_dy,
                                         b.mean_dy_xhat, b.xhat_bias, b.xhat_inv_g);
        });
    } else if (sums) {
        call.run("backward_reduce", [&](void* uc) {
            return k.backward_reduce(uc, b.z, b.dz, b.weight, b.bias, b.invstd, b.running_var, options.epsilon,
                                     b.abs_weight, ck.batch_stats, act, options.activation_param,
                                     detail::kernel_threads(), weight_grad, bias_grad, b.grad_scale, b.mean_dy,
                                     b.mean_dy_xhat, b.xhat_bias, b.xhat_inv_g);
        });
    } else {
        auto running_mean = scratch.filled(0);  // not needed by the backward coefficients
        auto unused_pivot = scratch.output(), unused_scale = scratch.output(), unused_shift = scratch.output();
        call.run("global_coeffs", [&](void* uc) {
            return k.global_coeffs(uc, running_mean, b.running_var, b.weight, b.bias, options.epsilon, b.abs_weight,
                                   unused_pivot, unused_scale, unused_shift, b.grad_scale, b.xhat_bias, b.xhat_inv_g);
        });
    }
    apply(k, b, ck.batch_stats, options, call);
}

void backward_partials(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const ParamGrads& grads,
                       const TensorRef& partials, const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(z.device);
    const detail::Checked ck = detail::validate_backward_partials(z, dz, state, grads, partials, options, call);
    const detail::Kernels& k = *ck.kernels;
    detail::Scratch scratch(ck, options, call);
    BackwardBuffers b = wrap(z, dz, state, options, ck, k, scratch, call);
    auto weight_grad = scratch.or_filled(grads.weight_grad, 0.0);
    auto bias_grad = scratch.or_filled(grads.bias_grad, 0.0);
    auto out = detail::sync_buffer(partials, sync_partials_size(ck.view.c), 0, call);
    if (k.gpu_backward_row) {  // GPUs: the block partials, then the gradients and the row from them
        const iabn_sched::GpuPartition p = detail::gpu_partition(ck.view);
        const detail::GpuPartials kp = detail::gpu_partials_for(k, ck.view, b.vector());
        auto blocks = scratch.partials(p);
        call.run("gpu_backward_partials", [&](void* uc) {
            return kp.backward(uc, kp.vector > 1 ? b.z_vector : b.z, kp.vector > 1 ? b.dz_vector : b.dz, b.weight,
                               b.bias, options.epsilon, b.abs_weight, static_cast<int>(options.activation),
                               options.activation_param, kp.steps(p), p.row_steps, blocks);
        });
        call.run("gpu_backward_row", [&](void* uc) {
            return k.gpu_backward_row(uc, blocks, b.weight, options.epsilon, b.abs_weight, weight_grad, bias_grad,
                                      out);
        });
        return;
    }
    call.run("backward_partials", [&](void* uc) {
        return k.backward_partials(uc, b.z, b.dz, b.weight, b.bias, options.epsilon, b.abs_weight,
                                   static_cast<int>(options.activation), options.activation_param,
                                   detail::kernel_threads(), weight_grad, bias_grad, out);
    });
}

void backward_finish(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const TensorRef& gathered,
                     const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(z.device);
    const detail::Checked ck = detail::validate_backward_finish(z, dz, state, gathered, options, call);
    const detail::Kernels& k = *ck.kernels;
    detail::Scratch scratch(ck, options, call);
    BackwardBuffers b = wrap(z, dz, state, options, ck, k, scratch, call);
    auto rows = detail::sync_buffer(gathered, sync_partials_size(ck.view.c), ck.processes, call);
    outputs_for_apply(b, scratch);
    call.run("backward_merge", [&](void* uc) {
        return k.backward_merge(uc, rows, b.weight, b.bias, b.invstd, options.epsilon, b.abs_weight, b.grad_scale,
                                b.mean_dy, b.mean_dy_xhat, b.xhat_bias, b.xhat_inv_g);
    });
    apply(k, b, true, options, call);
}

}  // namespace iabn
