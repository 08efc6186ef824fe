// The tensor view the schedules are written for, stated here so that schedules/ depends on
// nothing in generators/ (the generators include their schedules, not the other way round).
//
// Every element-wise pipeline sees its tensor as a 3-D view x(s, c, n) with channel dim c:
//   nchw: s = the flattened spatial dims (stride 1), c (stride S), n (stride C*S);
//   nhwc: s = the flattened non-channel dims (stride C), c (stride 1), n of extent 1.
// generators/tensor_view.h builds the view's constraints on top of this.
#pragma once

namespace iabn_sched {

enum class ViewLayout { nchw, nhwc };

// Which of the view's dims (0 = s, 1 = c) has unit stride.
inline int dense_dim(ViewLayout layout) { return layout == ViewLayout::nchw ? 0 : 1; }

}  // namespace iabn_sched
