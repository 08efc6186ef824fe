// iabn::backward: validate, pick the kernels, wrap the buffers, call.
#include "call.h"
#include "halide_glue.h"
#include "kernels.h"
#include "scratch.h"
#include "validate.h"

namespace iabn {

void backward(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const ParamGrads& grads,
              const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(z.device);  // first: it outlives every buffer of the call
    const detail::Checked ck = detail::validate_backward(z, dz, state, grads, options, call);
    const detail::Kernels& k = detail::kernels_for(z.dtype, ck.view.kernel_layout, z.device);
    const int64_t channels = ck.view.c;
    detail::Scratch scratch(channels, ck.channel_dtype, call);

    auto zv = detail::tensor_buffer(z, ck.view, call);
    auto dzv = detail::tensor_buffer(dz, ck.view, call);
    auto weight = scratch.or_filled(state.weight, 1.0);
    // A missing weight means g = 1: the |weight| + epsilon convention applies to a given weight.
    const bool abs_weight = options.abs_weight && state.weight.data;
    auto bias = scratch.or_filled(state.bias, 0.0);
    const int act = static_cast<int>(options.activation);
    // The statistics the forward normalized with: saved (batch) or running (global).
    auto invstd = scratch.or_filled(ck.batch_stats ? state.saved_invstd : TensorRef{}, 0.0);
    auto running_var = scratch.or_filled(ck.batch_stats ? TensorRef{} : state.running_var, 1.0);
    auto weight_grad = scratch.or_filled(grads.weight_grad, 0.0);
    auto bias_grad = scratch.or_filled(grads.bias_grad, 0.0);

    if (detail::use_fused(k, channels)) {
        call.run("backward_fused", [&](void* uc) {
            return k.backward_fused(uc, zv, dzv, weight, bias, invstd, running_var, options.epsilon, abs_weight,
                                    ck.batch_stats, act, options.activation_param, dzv, weight_grad, bias_grad);
        });
        return;
    }
    auto grad_scale = scratch.output(), mean_dy = scratch.output(), mean_dy_xhat = scratch.output();
    auto xhat_bias = scratch.output(), xhat_inv_g = scratch.output();

    // The sums over the tensor are needed for batch statistics, or for parameter gradients.
    if (ck.batch_stats || grads.weight_grad.data || grads.bias_grad.data) {
        call.run("backward_reduce", [&](void* uc) {
            return k.backward_reduce(uc, zv, dzv, weight, bias, invstd, running_var, options.epsilon, abs_weight,
                                     ck.batch_stats, act, options.activation_param, detail::kernel_threads(),
                                     weight_grad, bias_grad, grad_scale, mean_dy, mean_dy_xhat, xhat_bias,
                                     xhat_inv_g);
        });
    } else {
        auto running_mean = scratch.filled(0);  // not needed by the backward coefficients
        auto unused_pivot = scratch.output(), unused_scale = scratch.output(), unused_shift = scratch.output();
        call.run("global_coeffs", [&](void* uc) {
            return k.global_coeffs(uc, running_mean, running_var, weight, bias, options.epsilon, abs_weight,
                                   unused_pivot, unused_scale, unused_shift, grad_scale, xhat_bias, xhat_inv_g);
        });
    }
    call.run("backward_apply", [&](void* uc) {
        return k.backward_apply(uc, zv, grad_scale, mean_dy, mean_dy_xhat, xhat_bias, xhat_inv_g, ck.batch_stats,
                                act, options.activation_param, dzv);
    });
}

}  // namespace iabn
