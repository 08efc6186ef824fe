// Every check of the "Bad input" list of docs/DESIGN.md, done before any buffer is written.
#pragma once

#include "iabn/iabn.h"
#include "view.h"

namespace iabn::detail {

struct Checked {
    View view;
    bool batch_stats;     // training && !use_global_stats
    DType channel_dtype;  // of every per-channel buffer
};

bool uses_batch_stats(const Options& options);
DType channel_dtype_for(DType tensor_dtype);

// Both begin the call on its device (call.h, device.h) once the arguments are known to be
// well-formed: the checks of values (the running variance, the backward's scale) read them
// there.
Checked validate_forward(const TensorRef& x, const ChannelState& state, const Options& options, Call& call);
Checked validate_backward(const TensorRef& z, const TensorRef& dz, const ChannelState& state,
                          const ParamGrads& grads, const Options& options, Call& call);

}  // namespace iabn::detail
