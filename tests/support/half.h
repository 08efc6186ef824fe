// The tests' own 16-bit floats: f16 (IEEE binary16) and bf16 (the upper half of binary32), as
// bit patterns converted to and from double by their definitions (sign, exponent, significand),
// independent of the library, of Halide and of the compiler's half types.
//
// to_bits rounds to nearest, ties to even, overflows to inf past the largest finite value's
// rounding boundary, and keeps NaN a (quiet) NaN: the rules the library's kernels promise.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace iabn_test {

struct HalfFormat {
    int mantissa_bits;  // stored fraction bits: 10 (f16), 7 (bf16)
    int exponent_bits;  // 5 (f16), 8 (bf16)
    int bias() const { return (1 << (exponent_bits - 1)) - 1; }
    int emin() const { return 1 - bias(); }           // exponent of the smallest normal
    int emax() const { return bias(); }               // exponent of the largest finite
    uint16_t exponent_mask() const { return static_cast<uint16_t>(((1 << exponent_bits) - 1) << mantissa_bits); }
    // Unit roundoff: half the spacing of the values in [1, 2).
    double unit_roundoff() const { return std::ldexp(1.0, -mantissa_bits - 1); }
    double largest() const { return std::ldexp(2.0 - std::ldexp(1.0, -mantissa_bits), emax()); }
};

constexpr HalfFormat kF16{10, 5};
constexpr HalfFormat kBF16{7, 8};

inline double from_bits(HalfFormat f, uint16_t h) {
    const bool negative = (h & 0x8000) != 0;
    const int exponent = (h & f.exponent_mask()) >> f.mantissa_bits;
    const int fraction = h & ((1 << f.mantissa_bits) - 1);
    double magnitude;
    if (exponent == (1 << f.exponent_bits) - 1) {
        magnitude = fraction ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    } else if (exponent == 0) {  // subnormal: fraction * 2^(emin - mantissa_bits)
        magnitude = std::ldexp(static_cast<double>(fraction), f.emin() - f.mantissa_bits);
    } else {
        magnitude = std::ldexp(1.0 + std::ldexp(static_cast<double>(fraction), -f.mantissa_bits), exponent - f.bias());
    }
    return negative ? -magnitude : magnitude;
}

inline uint16_t to_bits(HalfFormat f, double v) {
    const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    const uint16_t inf = f.exponent_mask();
    if (std::isnan(v)) return static_cast<uint16_t>(sign | inf | (1 << (f.mantissa_bits - 1)));
    const double a = std::fabs(v);
    if (std::isinf(a)) return static_cast<uint16_t>(sign | inf);
    // The spacing of the values around a: 2^(e - mantissa_bits), e = max(exponent of a, emin).
    int e = a == 0 ? f.emin() : std::ilogb(a);
    if (e < f.emin()) e = f.emin();
    const double spacing = std::ldexp(1.0, e - f.mantissa_bits);
    const double steps = std::nearbyint(a / spacing);  // exact division; nearbyint: ties to even
    const double rounded = steps * spacing;
    if (rounded > f.largest()) return static_cast<uint16_t>(sign | inf);
    // Encode the (representable) rounded value.
    if (rounded < std::ldexp(1.0, f.emin())) {  // subnormal or zero: the count of smallest steps
        return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::ldexp(rounded, f.mantissa_bits - f.emin())));
    }
    const int exponent = std::ilogb(rounded);
    const double fraction = std::ldexp(rounded, -exponent) - 1.0;  // in [0, 1)
    return static_cast<uint16_t>(sign | ((exponent + f.bias()) << f.mantissa_bits) |
                                 static_cast<uint16_t>(std::ldexp(fraction, f.mantissa_bits)));
}

inline double round_to_half(HalfFormat f, double v) { return from_bits(f, to_bits(f, v)); }

}  // namespace iabn_test
