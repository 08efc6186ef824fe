// What the runtime runs for a tensor, as pure rules without Halide: the 3-D view (s, c, n) its
// kernels see (generators/tensor_view.h states the same from the kernels' side) and whether a
// training pass runs one pass per channel or two. The tuner (tools/tune) times exactly these.
#pragma once

#include "iabn/iabn.h"

#include <functional>
#include <numeric>
#include <vector>

namespace iabn::detail {

struct View {
    Layout kernel_layout;       // nchw: s dense; nhwc: c dense
    int64_t s, c, n;            // extents
    int64_t stride_s, stride_c, stride_n;
    int64_t per_channel() const { return s * n; }  // M
};

// Rank-2 tensors and nchw tensors with spatial size 1 have channels as the dense dim, so they
// run on the channels-last kernels whatever the declared layout. `shape` has rank >= 2 and no
// zero dim (the validation checks both first).
inline View make_view(const std::vector<int64_t>& shape, Layout layout) {
    const int64_t numel = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    const int64_t spatial = numel / (shape[0] * shape[1]);
    if (layout == Layout::nchw && spatial > 1) {
        const int64_t c = shape[1];
        return {Layout::nchw, spatial, c, shape[0], 1, spatial, c * spatial};
    }
    const int64_t c = layout == Layout::nchw ? shape[1] : shape.back();
    const int64_t m = numel / c;
    return {Layout::nhwc, m, c, 1, c, 1, 0};  // n has extent 1: its stride is never used
}

// One pass per channel (where a view has one-pass kernels: nchw on CPUs) keeps every thread busy
// only with at least one channel per thread; with fewer channels the two-pass kernels, which also
// split channels into blocks, are faster.
inline bool one_pass_suits(int64_t channels, int threads) { return channels >= threads; }

}  // namespace iabn::detail
