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
#include <vector>

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

// A GPU apply's view with 128-bit vectors (`vector` elements, > 1): the dense dim split into
// lanes, so that every vector starts at a multiple of `vector` elements of a 16-byte-aligned
// tensor, which Halide then loads and stores whole (ld.global.v4 on CUDA):
//   nchw (lane, sv, c, n): s = sv * vector + lane;   channels-last (lane, cv, s, n): c = cv * vector + lane.
// With `vector` 1, the plain view (s, c, n). `c`: the channel of an element, for the
// per-channel Inputs.
struct ElementView {
    std::vector<Halide::Var> args;
    Halide::Expr c;
};

inline ElementView element_view(ViewLayout layout, int vector) {
    using Halide::Var;
    Var s("s"), c("c"), n("n"), lane("lane"), sv("sv"), cv("cv");
    if (vector <= 1) return {{s, c, n}, c};
    if (layout == ViewLayout::nchw) return {{lane, sv, c, n}, c};
    return {{lane, cv, s, n}, cv * vector + lane};
}

// The view's constraints: every min 0, the dense dim of unit stride; for a vector view besides
// the lanes' extent and strides in multiples of `vector` elements (the runtime wraps the tensor
// so), and 16-byte-aligned memory (the runtime picks this variant only then).
template <typename BufferParam>
void require_view(BufferParam& b, ViewLayout layout, int vector) {
    for (int d = 0; d < b.dimensions(); d++) b.dim(d).set_min(0);
    if (vector <= 1) {
        require_dense(b, layout);
        return;
    }
    b.dim(0).set_extent(vector).set_stride(1);
    b.dim(1).set_stride(vector);
    b.dim(2).set_stride(b.dim(1).extent() * vector);
    b.dim(3).set_stride(b.dim(2).extent() * b.dim(2).stride());  // (channels-last: n has extent 1)
    b.set_host_alignment(16);
}

// A tensor Input as element (s, c, n) reads it, through the plain view or, with `vector` > 1, at
// `lane` of the vector view (nchw: x(lane, s, c, n), s counting vectors): the reductions' terms
// are written once for both.
template <typename X>
struct TensorAt {
    const X& x;
    int vector;
    Halide::Expr lane;
    Halide::Expr operator()(const Halide::Expr& s, const Halide::Expr& c, const Halide::Expr& n) const {
        return vector > 1 ? Halide::Expr(x(lane, s, c, n)) : Halide::Expr(x(s, c, n));
    }
};

// Elements per channel of the view, as the accumulation type (exact for counts < 2^53).
template <typename BufferParam>
Halide::Expr elements_per_channel(const BufferParam& x, Halide::Type t) {
    return Halide::cast(t, x.dim(0).extent()) * Halide::cast(t, x.dim(2).extent());
}

}  // namespace iabn_gen
