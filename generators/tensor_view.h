// How every element-wise pipeline sees a tensor: a 3-D view x(s, c, n), channel dim c.
//   nchw [N, C, d2..]: s = flattened spatial dims (stride 1), c (stride S), n (stride C*S)
//   nhwc [.., C]:      s = flattened non-channel dims (stride C), c (stride 1), n of extent 1
// The algorithm is the same for both layouts; the layout decides which dim is dense, which the
// generator states as a stride constraint and the schedule uses to pick its vector dim.
// The layout enum itself lives with the schedules (schedules/view_layout.h), which must not
// include anything from generators/.
#pragma once

#include "Halide.h"
#include "view_layout.h"

#include <string>

namespace iabn_gen {

using iabn_sched::ViewLayout;
using iabn_sched::dense_dim;

inline ViewLayout view_layout(const std::string& layout) {
    if (layout == "nchw") return ViewLayout::nchw;
    if (layout == "nhwc") return ViewLayout::nhwc;
    throw std::invalid_argument("iabn generator: unknown layout '" + layout + "'");
}

// Halide assumes dim 0 is dense unless told otherwise; channels-last views are dense in c instead.
template <typename BufferParam>
void require_dense(BufferParam& buffer, ViewLayout layout) {
    if (layout == ViewLayout::nhwc) buffer.dim(0).set_stride(Halide::Expr());
    buffer.dim(dense_dim(layout)).set_stride(1);
}

// Elements per channel of the view, as the accumulation type (exact for counts < 2^53).
template <typename BufferParam>
Halide::Expr elements_per_channel(const BufferParam& x, Halide::Type t) {
    return Halide::cast(t, x.dim(0).extent()) * Halide::cast(t, x.dim(2).extent());
}

}  // namespace iabn_gen
