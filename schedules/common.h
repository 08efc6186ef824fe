// What the CPU and GPU schedules share.
#pragma once

#include "Halide.h"
#include "view_layout.h"

#include <vector>

namespace iabn_sched {

// A stage's loop, compiled once per runtime condition (the activation code, batch statistics),
// each copy with that condition known: the hot loops carry no switch.
inline void specialize_all(Halide::Stage stage, const std::vector<Halide::Expr>& conditions) {
    for (const Halide::Expr& cond : conditions) stage.specialize(cond);
}

}  // namespace iabn_sched
