// The memory-bandwidth floor: streaming passes that move exactly the bytes a pass must move,
// vectorized and parallel (OpenMP, same thread count as iabn), as fast as the machine allows.
// They are the yardstick of iabn-bench (docs/DESIGN.md, "Performance model").
// 16-bit tensors (the storage types below) are loaded, computed in f32 and stored back in 16 bits,
// as iabn's 16-bit kernels do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace bench {

// 16-bit tensor elements, held as their bits: f16 is IEEE binary16, bf16 the upper half of an
// IEEE binary32. Distinct types so that the overloads below and the bench's cases tell them apart.
struct f16 {
    uint16_t bits;
};
struct bf16 {
    uint16_t bits;
};

// Conversions, f32 <-> 16 bits: exact one way, rounding to nearest even the other, NaN kept a NaN
// (the rules of iabn's kernels). Written on the bits, so that they compile with any compiler and
// on any CPU; the timed floors use the CPU's conversion instructions where it has them (floor.cpp).
inline float to_float(bf16 h) {
    const uint32_t b = uint32_t{h.bits} << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
inline bf16 to_bf16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    // Adding 0x7fff plus the lowest kept bit rounds the dropped half to nearest, ties to even. A
    // NaN is kept quiet instead (the sum could carry it into inf). A select, not a branch, so
    // that the floor's loops vectorize.
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    const bool nan = (b & 0x7fffffffu) > 0x7f800000u;
    return {static_cast<uint16_t>(nan ? (b >> 16) | 0x40u : rounded)};
}
float to_float(f16 h);
f16 to_f16(float f);

// Variants: the f32 and f64 floors exist as the same loops compiled for each vector ISA this CPU
// runs (x86: the build's baseline, AVX2, AVX-512 with 512-bit vectors), because a floor compiled
// only for the oldest CPU can be slower than iabn's kernels, which dispatch to the newest; and,
// for the widest ISA, hand-unrolled on aligned vectors ("x4") and the same with non-temporal
// stores ("x4 nt"), because the compiler's loop is not always the fastest a machine runs.
// iabn-bench times every variant of every floor and keeps the fastest. `variant` indexes
// floor_variants(); the 16-bit floors have one variant (the fastest conversions the CPU has,
// chosen at run time) and ignore it.
std::vector<std::string> floor_variants();  // e.g. "baseline", "avx2", "avx512", "avx512 x4", "avx512 x4 nt"
// Throws unless every variant computes the baseline's values (iabn-bench checks at its start).
void check_floor_variants();

// One overload per tensor dtype (float, double, f16, bf16).
// In place: x = x * s + t (reads and writes x: 2 passes).
void floor_scale(float* x, size_t n, int variant = 0);
void floor_scale(double* x, size_t n, int variant = 0);
void floor_scale(f16* x, size_t n, int variant = 0);
void floor_scale(bf16* x, size_t n, int variant = 0);
// Read only: returns sum(x) (1 pass); the result is kept so the read cannot be optimized away.
double floor_read(const float* x, size_t n, int variant = 0);
double floor_read(const double* x, size_t n, int variant = 0);
double floor_read(const f16* x, size_t n, int variant = 0);
double floor_read(const bf16* x, size_t n, int variant = 0);
// In place on dz, reading z: dz = dz * s + z * t (3 passes).
void floor_combine(float* dz, const float* z, size_t n, int variant = 0);
void floor_combine(double* dz, const double* z, size_t n, int variant = 0);
void floor_combine(f16* dz, const f16* z, size_t n, int variant = 0);
void floor_combine(bf16* dz, const bf16* z, size_t n, int variant = 0);

// How the 16-bit floors convert on this CPU (chosen at run time, floor.cpp), for the bench's
// header: e.g. "f16 F16C, bf16 vcvtneps2bf16". Without F16C the f16 floor converts one element at
// a time and may be slower than memory: the header then says so.
std::string floor_conversions();

}  // namespace bench
