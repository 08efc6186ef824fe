// Element types of a pipeline, derived from its `dtype` generator parameter.
// Storage is what the tensor holds; compute is the arithmetic type of element-wise math
// (f32 for every narrow type); channel is the type of the caller's per-channel buffers;
// accum is the type of every per-channel sum (f64 always: sums over millions of elements stay
// exact to ~1e-10, and these kernels are memory-bound, so the wide adds cost no time).
#pragma once

#include "Halide.h"

#include <string>

namespace iabn_gen {

struct ElementTypes {
    Halide::Type storage, compute, channel, accum;
};

inline ElementTypes element_types(const std::string& dtype) {
    using Halide::Float;
    using Halide::BFloat;
    if (dtype == "f32") return {Float(32), Float(32), Float(32), Float(64)};
    if (dtype == "f64") return {Float(64), Float(64), Float(64), Float(64)};
    if (dtype == "f16") return {Float(16), Float(32), Float(32), Float(64)};
    if (dtype == "bf16") return {BFloat(16), Float(32), Float(32), Float(64)};
    throw std::invalid_argument("iabn generator: unknown dtype '" + dtype + "'");
}

}  // namespace iabn_gen
