// Element types of a pipeline, derived from its `dtype` generator parameter and its target.
// Storage is what the tensor holds; compute is the arithmetic type of element-wise math
// (f32 for every 16-bit type); channel is the type of the caller's per-channel buffers (f32 for
// 16-bit tensors, as PyTorch's mixed precision keeps them); accum is the type of every
// per-channel sum (f64 always: sums over millions of elements stay exact to ~1e-10). The wide adds
// are not always free: on an AMD EPYC they cost no time, but on an Intel Xeon (2026-11-30,
// bench/one_pass_bound.cpp) plain one-pass loops with f64 sums took 1.15-1.3x as long as the same
// loops with f32 sums (BENCHMARKS.md, "Whole networks").
//
// Every element a pipeline reads goes through to_compute() and every element it writes through
// to_storage(): conversions round to nearest even and keep NaN a NaN. f16 goes through Halide's
// own casts where the target converts in hardware (x86 with F16C), everything else 16-bit on its
// bits, by the functions below (element_types() says why).
#pragma once

#include "Halide.h"

#include <cmath>
#include <string>

namespace iabn_gen {

// f16 (1 sign, 5 exponent, 10 fraction bits) to and from f32, on the bits (UInt(16) <-> f32).
inline Halide::Expr f16_bits_to_f32(const Halide::Expr& h) {
    using namespace Halide;
    Expr u = cast(UInt(32), h);
    // Exponent and fraction moved to f32's positions; rebiasing the exponent (15 -> 127) is an
    // add. An all-ones exponent (inf, NaN) needs the add twice; a zero one (subnormal, zero) is
    // made the normal 2^-14 * (1 + fraction) and 2^-14 subtracted in f32 (exact, and no f32
    // subnormal operand, which some CPUs handle in slow microcode).
    Expr m = (u & 0x7fff) << 13;
    Expr rebiased = m + (112 << 23);
    Expr subnormal = reinterpret(UInt(32), reinterpret(Float(32), rebiased + (1 << 23)) - 6.103515625e-05f);
    Expr magnitude = select(m >= 0x0f800000, rebiased + (112 << 23), m < 0x00800000, subnormal, rebiased);
    return reinterpret(Float(32), magnitude | ((u & 0x8000) << 16));
}

inline Halide::Expr f32_to_f16_bits(const Halide::Expr& f) {
    using namespace Halide;
    Expr b = reinterpret(UInt(32), f);
    Expr sign = cast(UInt(16), (b >> 16) & 0x8000);
    Expr a = b & 0x7fffffff;
    // Normal results: round the 23-bit mantissa to 10 bits, ties to even (the carry may step
    // the exponent, up to inf), then rebias the exponent (127 -> 15).
    Expr normal = ((a + 0xfff + ((a >> 13) & 1)) >> 13) - (112 << 10);
    // Below 2^-14: a multiple of 2^-24. Adding 0.5 (whose f32 spacing is 2^-24) makes the
    // floating-point adder round |f| to that multiple, ties to even; the low bits of the sum are
    // then the f16 bits (a carry to 1024 is the smallest normal's bits, as it should be).
    Expr subnormal = reinterpret(UInt(32), reinterpret(Float(32), a) + 0.5f) - 0x3f000000;
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
    // is_nan: one unordered compare (an integer test of the bits is three operations on AVX2,
    // which has no unsigned compare).
    return cast(UInt(16), select(is_nan(f), (b >> 16) | 0x40, rounded));
}

// Which 16-bit format a tensor holds (none: f32 or f64).
enum class Half { none, f16, bf16 };

struct ElementTypes {
    Halide::Type storage, compute, channel, accum;
    Half half = Half::none;
    bool f16_instructions = false;  // f16 <-> f32 in hardware: Halide's casts, not the bit code
    // Per-channel sums in the compute type over bounded chunks, the chunks' totals in accum
    // (statistics.h, channel_sums()): CPUs with an f32 compute type. (GPUs: see element_types.)
    bool chunked_sums = false;

    // A stored element, in the compute type.
    Halide::Expr to_compute(const Halide::Expr& stored) const {
        if (f16_instructions) return Halide::cast(compute, stored);
        switch (half) {
            case Half::f16: return f16_bits_to_f32(bits_of(stored));
            case Half::bf16: return bf16_bits_to_f32(bits_of(stored));
            default: return Halide::cast(compute, stored);
        }
    }
    // A computed value, in the storage type.
    Halide::Expr to_storage(const Halide::Expr& value) const {
        const Halide::Expr f = Halide::cast(Halide::Float(32), value);
        if (f16_instructions) return Halide::cast(storage, f);
        switch (half) {
            case Half::f16: return from_bits(f32_to_f16_bits(f));
            case Half::bf16: return from_bits(f32_to_bf16_bits(f));
            default: return Halide::cast(storage, value);
        }
    }
    // The spacing of the stored dtype's values just below 1 (half its epsilon), in the compute type.
    Halide::Expr spacing_below_one() const {
        const int fraction_bits = half == Half::f16 ? 10 : half == Half::bf16 ? 7 : storage.bits() == 32 ? 23 : 52;
        return Halide::cast(compute, Halide::Expr(std::ldexp(1.0, -fraction_bits - 1)));
    }

private:
    // 16-bit storage is Float(16) / BFloat(16) on CPUs and UInt(16) on GPUs (see element_types).
    Halide::Expr bits_of(const Halide::Expr& stored) const {
        return storage.is_uint() ? stored : Halide::reinterpret(Halide::UInt(16), stored);
    }
    Halide::Expr from_bits(const Halide::Expr& bits) const {
        return storage.is_uint() ? bits : Halide::reinterpret(storage, bits);
    }
};

// Which conversions run where:
//  * f16 on x86 with F16C: Halide's casts, which Halide 21 compiles to vcvtph2ps / vcvtps2ph
//    (exact, round to nearest even, NaN kept): 2.4-3.3x faster kernels than the bit code.
//  * f16 elsewhere (sse41, ARM, GPUs) and bf16 everywhere: the bit code above. Halide's
//    emulated f16 casts (x86 without F16C) turn NaN into inf, and so does its bf16 cast for NaNs
//    whose payload lies in the low half; Halide 21 emits no bf16 conversion instruction on x86.
//  * On GPUs the 16-bit tensors are UInt(16) buffers: OpenCL C has no half type without
//    cl_khr_fp16, and BFloat(16) on CUDA gave PTX that ptxas rejects (a 16-bit load into an f32
//    register).
inline ElementTypes element_types(const std::string& dtype, const Halide::Target& target) {
    using Halide::Float;
    using Halide::BFloat;
    const bool gpu = target.has_gpu_feature();
    // The GPU reductions add every term in f64 (their schedules have no chunk stage yet).
    const bool chunks = !gpu;
    if (dtype == "f32") return {Float(32), Float(32), Float(32), Float(64), Half::none, false, chunks};
    if (dtype == "f64") return {Float(64), Float(64), Float(64), Float(64)};
    if (dtype == "f16") {
        const bool f16c = !gpu && target.arch == Halide::Target::X86 && target.has_feature(Halide::Target::F16C);
        return {gpu ? Halide::UInt(16) : Float(16), Float(32), Float(32), Float(64), Half::f16, f16c, chunks};
    }
    if (dtype == "bf16") return {gpu ? Halide::UInt(16) : BFloat(16), Float(32), Float(32), Float(64), Half::bf16, false, chunks};
    throw std::invalid_argument("iabn generator: unknown dtype '" + dtype + "'");
}

}  // namespace iabn_gen
