// iabn::forward: validate, pick the kernels, wrap the buffers, call.
#include "call.h"
#include "halide_glue.h"
#include "kernels.h"
#include "scratch.h"
#include "validate.h"

namespace iabn {

void forward(const TensorRef& x, const ChannelState& state, const Options& options) {
    detail::init_halide_runtime();
    detail::Call call(x.device);  // first: it outlives every buffer of the call
    const detail::Checked ck = detail::validate_forward(x, state, options, call);
    const detail::Kernels& k = detail::kernels_for(x.dtype, ck.view.kernel_layout, x.device);
    const int64_t channels = ck.view.c;
    detail::Scratch scratch(channels, ck.channel_dtype, call);
    auto given = [&](const TensorRef& t) { return detail::channel_buffer(t, channels, call); };

    auto xv = detail::tensor_buffer(x, ck.view, call);
    auto weight = scratch.or_filled(state.weight, 1.0);
    // A missing weight means g = 1: the |weight| + epsilon convention applies to a given weight.
    const bool abs_weight = options.abs_weight && state.weight.data;
    auto bias = scratch.or_filled(state.bias, 0.0);
    auto running_mean = given(state.running_mean);
    auto running_var = given(state.running_var);
    auto saved_mean = given(state.saved_mean);  // written with batch statistics only
    auto saved_invstd = given(state.saved_invstd);
    const int act = static_cast<int>(options.activation);

    if (ck.batch_stats && detail::use_fused(k, channels)) {  // (one-pass kernels are CPU only)
        call.run("forward_fused", [&](void* uc) {
            return k.forward_fused(uc, xv, weight, bias, options.epsilon, options.momentum,
                                   options.unbiased_running_var, abs_weight, act, options.activation_param, xv,
                                   saved_mean, saved_invstd, running_mean, running_var);
        });
        return;
    }
    auto pivot = scratch.output(), scale = scratch.output(), shift = scratch.output();

    if (ck.batch_stats) {
        call.run("forward_stats", [&](void* uc) {
            return k.forward_stats(uc, xv, weight, bias, options.epsilon, options.momentum,
                                   options.unbiased_running_var, abs_weight, detail::kernel_threads(), saved_mean,
                                   saved_invstd, running_mean, running_var, pivot, scale, shift);
        });
    } else {
        auto unused_scale = scratch.output(), unused_bias = scratch.output(), unused_inv_g = scratch.output();
        call.run("global_coeffs", [&](void* uc) {
            return k.global_coeffs(uc, running_mean, running_var, weight, bias, options.epsilon, abs_weight, pivot,
                                   scale, shift, unused_scale, unused_bias, unused_inv_g);
        });
    }
    call.run("forward_apply", [&](void* uc) {
        return k.forward_apply(uc, pivot, scale, shift, act, options.activation_param, xv);
    });
}

}  // namespace iabn
