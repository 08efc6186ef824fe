// Every check of the "Bad input" list of docs/semantics.md, done before any buffer is written.
#pragma once

#include "iabn/iabn.h"
#include "kernels.h"
#include "view.h"

namespace iabn::detail {

struct Checked {
    View view;
    bool batch_stats;     // training && !use_global_stats
    DType channel_dtype;  // of every per-channel buffer
    int64_t processes = 1;  // rows of a synchronized pass's gathered partials
    const Kernels* kernels = nullptr;  // the call's (this build has them: checked)
};

bool uses_batch_stats(const Options& options);
DType channel_dtype_for(DType tensor_dtype);

// Both begin the call on its device (call.h, device.h) once the arguments are known to be
// well-formed: the checks of values (the running variance, the backward's scale) read them
// there.
Checked validate_forward(const TensorRef& x, const ChannelState& state, const Options& options, Call& call);
Checked validate_backward(const TensorRef& z, const TensorRef& dz, const ChannelState& state,
                          const ParamGrads& grads, const Options& options, Call& call);

// The synchronized passes (iabn.h, "Batch statistics across processes"): the same checks, with
// the partials ([2C + 1] f64) or the gathered partials ([P, 2C + 1] f64, whose counts are read).
Checked validate_forward_partials(const TensorRef& x, const TensorRef& partials, const Options& options, Call& call);
Checked validate_forward_finish(const TensorRef& x, const ChannelState& state, const TensorRef& gathered,
                                const Options& options, Call& call);
Checked validate_backward_partials(const TensorRef& z, const TensorRef& dz, const ChannelState& state,
                                   const ParamGrads& grads, const TensorRef& partials, const Options& options,
                                   Call& call);
Checked validate_backward_finish(const TensorRef& z, const TensorRef& dz, const ChannelState& state,
                                 const TensorRef& gathered, const Options& options, Call& call);

}  // namespace iabn::detail
