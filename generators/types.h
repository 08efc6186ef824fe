// Element types of a pipeline, derived from its `dtype` generator parameter and its target.
// Storage is what the tensor holds; compute is the arithmetic type of element-wise math
// (f32 for every 16-bit type); channel is the type of the caller's per-channel buffers (f32 for
// 16-bit tensors, as PyTorch's mixed precision keeps them); accum is the type of every
// per-channel sum (f64 always: sums over millions of elements stay exact to ~1e-10, and these
// kernels are memory-bound, so the wide adds cost no time).
//
// Every element a pipeline reads goes through to_compute() and every element it writes through
// to_storage(): conversions round to nearest even and keep NaN a NaN (Halide's own casts, except
// f32 -> f16, which is the bit-level conversion below on every target; on GPUs both 16-bit
// dtypes are converted at the bit level both ways).
#pragma once

#include "Halide.h"

#include <cmath>
#include <string>

namespace iabn_gen {

// 16-bit floats as their bits (UInt(16)), on GPUs: OpenCL C has no half type without the
// cl_khr_fp16 extension (PoCL, for one, lacks it; Halide 14 lowers bf16 through half there too),
// and Halide 14's bf16 PTX does not assemble. There f16 and bf16 tensors are read and written as
// 16-bit integers and converted here, with integer operations on the bits; the runtime passes
// such tensors as uint16 (DeviceBackend::element_type).
inline Halide::Expr f16_bits_to_f32(const Halide::Expr& h) {
    using namespace Halide;
    Expr u = cast(UInt(32), h);
    Expr sign = (u & 0x8000) << 16;
    Expr exponent = (u >> 10) & 0x1f, mantissa = u & 0x3ff;
    // Normal: rebias the exponent (15 -> 127); inf/NaN: all-ones exponent, payload kept.
    Expr normal = select(exponent == 0x1f, 0x7f800000 | (mantissa << 13), ((exponent + 112) << 23) | (mantissa << 13));
    // Subnormal (and zero): mantissa * 2^-24, exact in f32.
    Expr subnormal = reinterpret(UInt(32), cast(Float(32), mantissa) * (1.0f / 16777216.0f));
    return reinterpret(Float(32), select(exponent == 0, subnormal, normal) | sign);
}

inline Halide::Expr f32_to_f16_bits(const Halide::Expr& f) {
    using namespace Halide;
    Expr b = reinterpret(UInt(32), f);
    Expr sign = cast(UInt(16), (b >> 16) & 0x8000);
    Expr a = b & 0x7fffffff;
    // Normal results: round the 23-bit mantissa to 10 bits, ties to even (the carry may step
    // the exponent, up to inf), then rebias the exponent (127 -> 15).
    Expr normal = ((a + 0xfff + ((a >> 13) & 1)) >> 13) - (112 << 10);
    // Below 2^-14: a multiple of 2^-24, the f32 significand shifted right by 126 - exponent
    // (>= 14; from 25 on everything rounds to 0), rounded to nearest, ties to even, with integer
    // operations (OpenCL's round() breaks ties away from zero). A carry to 1024 gives the bits of
    // the smallest normal, as it should.
    Expr shift = cast(UInt(32), clamp(126 - cast(Int(32), a >> 23), 14, 25));
    Expr significand = (a & 0x7fffff) | 0x800000;
    Expr kept = significand >> shift, rest = significand & ((cast(UInt(32), 1) << shift) - 1);
    Expr half = cast(UInt(32), 1) << (shift - 1);
    Expr subnormal = kept + cast(UInt(32), rest > half || (rest == half && (kept & 1) == 1));
    Expr magnitude = select(a > 0x7f800000, 0x7e00,          // NaN stays NaN (quiet)
                            a >= 0x477ff000, 0x7c00,         // >= 65520 rounds to inf
                            a >= 0x38800000, normal, subnormal);
    return sign | cast(UInt(16), magnitude);
}

// bf16 is the upper half of an f32: widening is a shift; narrowing rounds the lower half away,
// ties to even, except for NaN, whose payload may sit in the lower half only (it is made quiet).
inline Halide::Expr bf16_bits_to_f32(const Halide::Expr& h) {
    using namespace Halide;
    return reinterpret(Float(32), cast(UInt(32), h) << 16);
}

inline Halide::Expr f32_to_bf16_bits(const Halide::Expr& f) {
    using namespace Halide;
    Expr b = reinterpret(UInt(32), f);
    Expr rounded = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
    return cast(UInt(16), select((b & 0x7fffffff) > 0x7f800000, (b >> 16) | 0x40, rounded));
}

// How the tensor's elements are stored: as the dtype itself, or as the bits of a 16-bit float.
enum class Bits { none, f16, bf16 };

struct ElementTypes {
    Halide::Type storage, compute, channel, accum;
    Bits bits = Bits::none;

    // A stored element, in the compute type.
    Halide::Expr to_compute(const Halide::Expr& stored) const {
        switch (bits) {
            case Bits::f16: return f16_bits_to_f32(stored);
            case Bits::bf16: return bf16_bits_to_f32(stored);
            default: return Halide::cast(compute, stored);
        }
    }
    // The spacing of the stored dtype's values just below 1 (half its epsilon), in the compute type.
    Halide::Expr spacing_below_one() const {
        const int fraction_bits = bits == Bits::f16 || storage == Halide::Float(16) ? 10
                                  : bits == Bits::bf16 || storage.is_bfloat()      ? 7
                                  : storage.bits() == 32                           ? 23
                                                                                   : 52;
        return Halide::cast(compute, Halide::Expr(std::ldexp(1.0, -fraction_bits - 1)));
    }
    // A computed value, in the storage type.
    Halide::Expr to_storage(const Halide::Expr& value) const {
        switch (bits) {
            case Bits::f16: return f32_to_f16_bits(Halide::cast(Halide::Float(32), value));
            case Bits::bf16: return f32_to_bf16_bits(Halide::cast(Halide::Float(32), value));
            default:
                // Halide 14's own f32 -> f16 cast turns NaN into inf (on every x86 target, F16C
                // or not): f16 goes through the bit-level conversion everywhere.
                if (storage == Halide::Float(16)) {
                    return Halide::reinterpret(storage, f32_to_f16_bits(Halide::cast(Halide::Float(32), value)));
                }
                return Halide::cast(storage, value);
        }
    }
};

inline ElementTypes element_types(const std::string& dtype, const Halide::Target& target) {
    using Halide::Float;
    using Halide::BFloat;
    if (dtype == "f32") return {Float(32), Float(32), Float(32), Float(64)};
    if (dtype == "f64") return {Float(64), Float(64), Float(64), Float(64)};
    // GPUs take 16-bit floats as bits: OpenCL C has no half type without cl_khr_fp16, and Halide
    // 14's BFloat(16) on CUDA gives PTX that ptxas rejects (a 16-bit load into an f32 register).
    const bool as_bits = target.has_gpu_feature();
    if (dtype == "f16" && as_bits) return {Halide::UInt(16), Float(32), Float(32), Float(64), Bits::f16};
    if (dtype == "bf16" && as_bits) return {Halide::UInt(16), Float(32), Float(32), Float(64), Bits::bf16};
    if (dtype == "f16") return {Float(16), Float(32), Float(32), Float(64)};
    if (dtype == "bf16") return {BFloat(16), Float(32), Float(32), Float(64)};
    throw std::invalid_argument("iabn generator: unknown dtype '" + dtype + "'");
}

}  // namespace iabn_gen
