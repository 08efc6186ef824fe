#include "floor.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

namespace bench {

float to_float(f16 h) {
    const uint32_t sign = uint32_t{h.bits & 0x8000u} << 16;
    const uint32_t exponent = (h.bits >> 10) & 0x1fu, fraction = h.bits & 0x3ffu;
    uint32_t b;
    if (exponent == 0x1f) {
        b = sign | 0x7f800000u | (fraction << 13);  // inf, NaN (payload kept)
    } else if (exponent == 0) {  // zero, subnormal: fraction * 2^-24, exact in f32
        const float f = std::ldexp(static_cast<float>(fraction), -24);
        std::memcpy(&b, &f, 4);
        b |= sign;
    } else {
        b = sign | ((exponent + 112) << 23) | (fraction << 13);  // rebias 15 -> 127
    }
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

f16 to_f16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
    const uint32_t a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7e00u)};  // quiet NaN
    // 65520 is halfway between the largest f16 (65504, odd significand) and 2^16: ties to even
    // go up, so from there on the result is inf.
    if (a >= 0x477ff000u) return {static_cast<uint16_t>(sign | 0x7c00u)};
    if (a < 0x38800000u) {  // below 2^-14: a subnormal step count, 2^24 * |f| rounded to nearest even
        return {static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(std::fabs(f), 24))))};
    }
    // Normal: drop 13 fraction bits rounding to nearest even (a carry may bump the exponent), then
    // rebias the exponent 127 -> 15.
    const uint32_t rounded = (a + 0xfffu + ((a >> 13) & 1u)) >> 13;
    return {static_cast<uint16_t>(sign | (rounded - (112u << 10)))};
}

namespace {

// The f32 and f64 loops, stamped once per variant (floor.h): the same source compiled for the
// build's baseline ISA and, on x86, for AVX2 and for AVX-512 with 512-bit vectors.
#define BENCH_FLOAT_LOOPS(suffix, attributes)                                                           \
    template <typename T>                                                                               \
    attributes void scale_##suffix(T* x, size_t n) {                                                    \
        _Pragma("omp parallel for simd schedule(static)")                                               \
        for (size_t i = 0; i < n; i++) x[i] = x[i] * T(1.0001) + T(0.5);                                \
    }                                                                                                   \
    /* Accumulated in T: a wider accumulator would make the loop compute-bound on some machines. */    \
    template <typename T>                                                                               \
    attributes double read_##suffix(const T* x, size_t n) {                                             \
        T sum = 0;                                                                                      \
        _Pragma("omp parallel for simd schedule(static) reduction(+ : sum)")                            \
        for (size_t i = 0; i < n; i++) sum += x[i];                                                     \
        return sum;                                                                                     \
    }                                                                                                   \
    template <typename T>                                                                               \
    attributes void combine_##suffix(T* dz, const T* z, size_t n) {                                     \
        _Pragma("omp parallel for simd schedule(static)")                                               \
        for (size_t i = 0; i < n; i++) dz[i] = dz[i] * T(1.0001) + z[i] * T(0.5);                       \
    }

BENCH_FLOAT_LOOPS(base, )
#ifdef BENCH_X86
BENCH_FLOAT_LOOPS(avx2, __attribute__((target("avx2,fma"))))
BENCH_FLOAT_LOOPS(avx512, __attribute__((target("avx512f,avx512vl,fma,prefer-vector-width=512"))))
#endif

#ifdef BENCH_X86
// Hand-written twins of the loops above, in explicit vectors of `Bytes` bytes (GCC's vector
// extension), four vectors per iteration on aligned addresses: the compiler's loops may be
// unrolled less, or peel differently. With `Streaming`, the stores are non-temporal (they bypass
// the caches and skip the eviction of the line later), where a machine's memory may be faster so.
template <typename T, int Bytes>
struct VecOf {
    typedef T type __attribute__((vector_size(Bytes)));
};
__attribute__((target("avx"))) inline void stream_store(float* p, VecOf<float, 32>::type v) {
    _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
}
__attribute__((target("avx"))) inline void stream_store(double* p, VecOf<double, 32>::type v) {
    _mm256_stream_pd(p, reinterpret_cast<__m256d>(v));
}
__attribute__((target("avx512f"))) inline void stream_store(float* p, VecOf<float, 64>::type v) {
    _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
}
__attribute__((target("avx512f"))) inline void stream_store(double* p, VecOf<double, 64>::type v) {
    _mm512_stream_pd(p, reinterpret_cast<__m512d>(v));
}

// The split every unrolled loop uses: `head` elements until `p` is aligned to the vector, then
// `blocks` blocks of four vectors (shared among the threads statically), then the rest.
struct Split {
    size_t head, blocks, unit;
    template <typename T, int Bytes>
    static Split of(const T* p, size_t n) {
        const size_t unit = 4 * Bytes / sizeof(T);
        const size_t misaligned = reinterpret_cast<uintptr_t>(p) % Bytes;
        const size_t head = std::min(n, misaligned ? (Bytes - misaligned) / sizeof(T) : 0);
        return {head, (n - head) / unit, unit};
    }
    size_t tail() const { return head + blocks * unit; }
};

// A vector load as a statement expression: a function returning a vector would need the ISA's
// target attribute itself (its ABI depends on it).
#define BENCH_LOAD(V, p)                     \
    ({                                       \
        V loaded_;                           \
        __builtin_memcpy(&loaded_, (p), sizeof loaded_); \
        loaded_;                             \
    })

#define BENCH_UNROLLED_LOOPS(suffix, attributes, Bytes)                                                 \
    /* x = x * 1.0001 + 0.5 (scale), or x = x * 1.0001 + z * 0.5 (Combine). */                          \
    template <typename T, bool Streaming, bool Combine>                                                 \
    attributes void rewrite_##suffix(T* x, const T* z, size_t n) {                                      \
        using V = typename VecOf<T, Bytes>::type;                                                       \
        constexpr size_t w = Bytes / sizeof(T);                                                         \
        const auto element = [x, z](size_t i) { x[i] = x[i] * T(1.0001) + (Combine ? z[i] * T(0.5) : T(0.5)); };\
        const Split sp = Split::of<T, Bytes>(x, n); /* z's alignment may differ: loaded unaligned */    \
        for (size_t i = 0; i < sp.head; i++) element(i);                                                \
        _Pragma("omp parallel")                                                                         \
        {                                                                                               \
            _Pragma("omp for schedule(static)")                                                         \
            for (size_t b = 0; b < sp.blocks; b++) {                                                    \
                const size_t at = sp.head + b * sp.unit;                                                \
                for (size_t k = 0; k < 4; k++) {                                                        \
                    T* p = x + at + k * w;                                                              \
                    V v = BENCH_LOAD(V, p) * T(1.0001);                                                 \
                    if (Combine) v += BENCH_LOAD(V, z + at + k * w) * T(0.5);                           \
                    else v += T(0.5);                                                                   \
                    if (Streaming) stream_store(p, v);                                                  \
                    else __builtin_memcpy(p, &v, sizeof v);                                             \
                }                                                                                       \
            }                                                                                           \
            if (Streaming) _mm_sfence();                                                                \
        }                                                                                               \
        for (size_t i = sp.tail(); i < n; i++) element(i);                                              \
    }                                                                                                   \
    /* Four accumulators: a sum's add latency no longer bounds the loop. */                            \
    template <typename T>                                                                               \
    attributes double read_##suffix(const T* x, size_t n) {                                             \
        using V = typename VecOf<T, Bytes>::type;                                                       \
        constexpr size_t w = Bytes / sizeof(T);                                                         \
        const Split sp = Split::of<T, Bytes>(x, n);                                                     \
        double total = 0;                                                                               \
        for (size_t i = 0; i < sp.head; i++) total += x[i];                                             \
        const T* a = x + sp.head;                                                                       \
        _Pragma("omp parallel reduction(+ : total)")                                                    \
        {                                                                                               \
            V s0 = {}, s1 = {}, s2 = {}, s3 = {};                                                       \
            _Pragma("omp for schedule(static)")                                                         \
            for (size_t b = 0; b < sp.blocks; b++) {                                                    \
                const T* p = a + b * sp.unit;                                                           \
                s0 += BENCH_LOAD(V, p);                                                                   \
                s1 += BENCH_LOAD(V, p + w);                                                               \
                s2 += BENCH_LOAD(V, p + 2 * w);                                                           \
                s3 += BENCH_LOAD(V, p + 3 * w);                                                           \
            }                                                                                           \
            const V s = (s0 + s1) + (s2 + s3);                                                          \
            for (size_t k = 0; k < w; k++) total += s[k];                                               \
        }                                                                                               \
        for (size_t i = sp.tail(); i < n; i++) total += x[i];                                           \
        return total;                                                                                   \
    }

BENCH_UNROLLED_LOOPS(unrolled_avx2, __attribute__((target("avx2,fma"))), 32)
BENCH_UNROLLED_LOOPS(unrolled_avx512, __attribute__((target("avx512f,avx512vl,fma,prefer-vector-width=512"))), 64)
#endif

// A variant: the ISA its loops are compiled for, and the loop's form (floor.h).
enum class Isa { base, avx2, avx512 };
enum class Form { compiler, unrolled, streaming };
struct Variant {
    Isa isa;
    Form form;
};

// The variants this CPU runs, in floor_variants()'s order: the compiler's loops for every ISA,
// then the hand-unrolled ones, plain and streaming, for the widest.
const std::vector<Variant>& usable() {
    static const std::vector<Variant> variants = [] {
        std::vector<Variant> v{{Isa::base, Form::compiler}};
#ifdef BENCH_X86
        Isa widest = Isa::base;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v.push_back({widest = Isa::avx2, Form::compiler});
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
            v.push_back({widest = Isa::avx512, Form::compiler});
        if (widest != Isa::base) {
            v.push_back({widest, Form::unrolled});
            v.push_back({widest, Form::streaming});
        }
#endif
        return v;
    }();
    return variants;
}

Variant variant_of(int variant) {
    return variant >= 0 && variant < static_cast<int>(usable().size()) ? usable()[static_cast<size_t>(variant)]
                                                                        : Variant{Isa::base, Form::compiler};
}

// x = x * 1.0001 + 0.5, or x = x * 1.0001 + z * 0.5 (Combine): the floor forward and backward.
template <bool Combine, typename T>
void rewrite(T* x, const T* z, size_t n, int variant) {
    const Variant v = variant_of(variant);
#ifdef BENCH_X86
    const bool streaming = v.form == Form::streaming;
    if (v.form != Form::compiler && v.isa == Isa::avx512)
        return streaming ? rewrite_unrolled_avx512<T, true, Combine>(x, z, n)
                         : rewrite_unrolled_avx512<T, false, Combine>(x, z, n);
    if (v.form != Form::compiler && v.isa == Isa::avx2)
        return streaming ? rewrite_unrolled_avx2<T, true, Combine>(x, z, n)
                         : rewrite_unrolled_avx2<T, false, Combine>(x, z, n);
    if (v.isa == Isa::avx2) return Combine ? combine_avx2(x, z, n) : scale_avx2(x, n);
    if (v.isa == Isa::avx512) return Combine ? combine_avx512(x, z, n) : scale_avx512(x, n);
#endif
    return Combine ? combine_base(x, z, n) : scale_base(x, n);
}

template <typename T>
void scale(T* x, size_t n, int variant) {
    rewrite<false, T>(x, nullptr, n, variant);
}

template <typename T>
void combine(T* dz, const T* z, size_t n, int variant) {
    rewrite<true, T>(dz, z, n, variant);
}

// A read has no stores: its streaming variant is the unrolled loop again.
template <typename T>
double read(const T* x, size_t n, int variant) {
    const Variant v = variant_of(variant);
#ifdef BENCH_X86
    if (v.form != Form::compiler && v.isa == Isa::avx512) return read_unrolled_avx512(x, n);
    if (v.form != Form::compiler && v.isa == Isa::avx2) return read_unrolled_avx2(x, n);
    if (v.isa == Isa::avx2) return read_avx2(x, n);
    if (v.isa == Isa::avx512) return read_avx512(x, n);
#endif
    return read_base(x, n);
}

}  // namespace

std::vector<std::string> floor_variants() {
    std::vector<std::string> names;
    for (Variant v : usable()) {
        std::string name = v.isa == Isa::avx512 ? "avx512" : v.isa == Isa::avx2 ? "avx2" : "baseline";
        if (v.form == Form::unrolled) name += " x4";
        if (v.form == Form::streaming) name += " x4 nt";
        names.push_back(name);
    }
    return names;
}

namespace {
// Every variant of a floor must do the whole work: each is run on a buffer whose length and start
// are odd (the head, the blocks and the tail all used) and must give the baseline's values up to
// rounding (FMA contraction and the unrolled sums' order differ).
template <typename T>
void check_variants() {
    const size_t n = 4099;
    std::vector<T> x0(n + 1), z(n + 1);
    for (size_t i = 0; i <= n; i++) {
        x0[i] = T(0.25) * T(i % 17);
        z[i] = T(0.5) * T(i % 5);
    }
    std::vector<T> want_scale(x0.begin() + 1, x0.end()), want_combine(want_scale);
    scale(want_scale.data(), n, 0);
    combine(want_combine.data(), z.data() + 1, n, 0);
    const double want_read = read(x0.data() + 1, n, 0);
    for (int v = 1; v < static_cast<int>(usable().size()); v++) {
        std::vector<T> a(x0), b(x0);
        scale(a.data() + 1, n, v);
        combine(b.data() + 1, z.data() + 1, n, v);
        const double got_read = read(x0.data() + 1, n, v);
        auto near = [](double got, double want) { return std::fabs(got - want) <= 1e-6 * (1 + std::fabs(want)); };
        bool same = a[0] == x0[0] && b[0] == x0[0] && near(got_read, want_read);  // nothing outside written
        for (size_t i = 0; i < n; i++) same = same && near(a[i + 1], want_scale[i]) && near(b[i + 1], want_combine[i]);
        if (!same) throw std::runtime_error("floor variant '" + floor_variants()[v] + "' computes other values");
    }
}
}  // namespace

void check_half_floors();

void check_floor_variants() {
    check_variants<float>();
    check_variants<double>();
    check_half_floors();
}

void floor_scale(float* x, size_t n, int variant) { scale(x, n, variant); }
void floor_scale(double* x, size_t n, int variant) { scale(x, n, variant); }
double floor_read(const float* x, size_t n, int variant) { return read(x, n, variant); }
double floor_read(const double* x, size_t n, int variant) { return read(x, n, variant); }
void floor_combine(float* dz, const float* z, size_t n, int variant) { combine(dz, z, n, variant); }
void floor_combine(double* dz, const double* z, size_t n, int variant) { combine(dz, z, n, variant); }

// The 16-bit floors. Converting is part of what a 16-bit pass must do, but a floor that converts
// slowly would flatter iabn: so they use the fastest conversions the CPU has, chosen at run time
// (the bench runs where it is built, with the baseline x86-64 flags). Measured on a 2-core Xeon
// (Sapphire Rapids) busy with other jobs, in-place pass over 512 MB, in GB/s: the f32 loop over
// the same bytes 10-13; F16C 8-11 and vcvtneps2bf16 11; the bf16 bit loop below 6.5 in AVX2 and
// 3 in SSE2; the f16 bit loop 1.
namespace {

// Conversions on the bits (floor.h), in the f32 loops' structure. The compiler vectorizes bf16's
// (shifts, adds, a select); f16's to_f16 branches on the exponent: one element at a time. Stamped
// once in the build's ISA and, on x86, once for AVX2, whose 32 -> 16-bit packing is one
// instruction where SSE2 needs a shuffle sequence.
#define BENCH_BIT_LOOPS(T, suffix, attributes)                                                          \
    attributes void scale_##suffix(T* x, size_t n) {                                                    \
        _Pragma("omp parallel for simd schedule(static)")                                               \
        for (size_t i = 0; i < n; i++) x[i] = to_##T(to_float(x[i]) * 1.0001f + 0.5f);                 \
    }                                                                                                   \
    attributes double read_##suffix(const T* x, size_t n) {                                             \
        float sum = 0;                                                                                  \
        _Pragma("omp parallel for simd schedule(static) reduction(+ : sum)")                            \
        for (size_t i = 0; i < n; i++) sum += to_float(x[i]);                                           \
        return sum;                                                                                     \
    }                                                                                                   \
    attributes void combine_##suffix(T* dz, const T* z, size_t n) {                                     \
        _Pragma("omp parallel for simd schedule(static)")                                               \
        for (size_t i = 0; i < n; i++)                                                                  \
            dz[i] = to_##T(to_float(dz[i]) * 1.0001f + to_float(z[i]) * 0.5f);                          \
    }

BENCH_BIT_LOOPS(f16, f16_bits, )
BENCH_BIT_LOOPS(bf16, bf16_bits, )

#ifdef BENCH_X86

// The CPU's conversions, 16 elements at a time, the threads splitting the blocks statically like
// the f32 loops; the rest (n % 16) element by element. g++ 12 does not vectorize _Float16 <->
// float conversions (it converts one element at a time even with F16C), hence the intrinsics.
#define BENCH_F16C __attribute__((target("avx,f16c")))
#define BENCH_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

// f16: F16C's vcvtph2ps / vcvtps2ph (round to nearest even), on two 8-lane halves: F16C needs
// only AVX.
BENCH_F16C inline void load16(const f16* p, __m256& lo, __m256& hi) {
    lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
}
BENCH_F16C inline void store16(f16* p, __m256 lo, __m256 hi) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT));
}

// The three floors on 16 elements at a time in two 8-lane f32 halves, through the format's
// load16 / store16 (below); the rest (n % 16) element by element. Stamped once per format, each
// with the ISA its conversions need.
#define BENCH_HALF_VECTOR_LOOPS(T, suffix, attributes)                                                   \
    attributes void scale_##suffix(T* x, size_t n) {                                                     \
        const size_t blocks = n / 16;                                                                    \
        const __m256 s = _mm256_set1_ps(1.0001f), t = _mm256_set1_ps(0.5f);                               \
        _Pragma("omp parallel for schedule(static)")                                                     \
        for (size_t b = 0; b < blocks; b++) {                                                            \
            __m256 lo, hi;                                                                               \
            load16(x + 16 * b, lo, hi);                                                                  \
            store16(x + 16 * b, _mm256_add_ps(_mm256_mul_ps(lo, s), t), _mm256_add_ps(_mm256_mul_ps(hi, s), t)); \
        }                                                                                                \
        for (size_t i = 16 * blocks; i < n; i++) x[i] = to_##T(to_float(x[i]) * 1.0001f + 0.5f);         \
    }                                                                                                    \
    attributes double read_##suffix(const T* x, size_t n) {                                              \
        const size_t blocks = n / 16;                                                                    \
        double total = 0;                                                                                \
        _Pragma("omp parallel reduction(+ : total)")                                                     \
        {                                                                                                \
            __m256 sum_lo = _mm256_setzero_ps(), sum_hi = _mm256_setzero_ps(); /* f32 sums per thread */ \
            _Pragma("omp for schedule(static)")                                                          \
            for (size_t b = 0; b < blocks; b++) {                                                        \
                __m256 lo, hi;                                                                           \
                load16(x + 16 * b, lo, hi);                                                              \
                sum_lo = _mm256_add_ps(sum_lo, lo);                                                      \
                sum_hi = _mm256_add_ps(sum_hi, hi);                                                      \
            }                                                                                            \
            float lanes[8];                                                                              \
            _mm256_storeu_ps(lanes, _mm256_add_ps(sum_lo, sum_hi));                                      \
            for (float v : lanes) total += v;                                                            \
        }                                                                                                \
        for (size_t i = 16 * blocks; i < n; i++) total += to_float(x[i]);                                \
        return total;                                                                                    \
    }                                                                                                    \
    attributes void combine_##suffix(T* dz, const T* z, size_t n) {                                      \
        const size_t blocks = n / 16;                                                                    \
        const __m256 s = _mm256_set1_ps(1.0001f), t = _mm256_set1_ps(0.5f);                               \
        _Pragma("omp parallel for schedule(static)")                                                     \
        for (size_t b = 0; b < blocks; b++) {                                                            \
            __m256 dlo, dhi, zlo, zhi;                                                                   \
            load16(dz + 16 * b, dlo, dhi);                                                               \
            load16(z + 16 * b, zlo, zhi);                                                                \
            store16(dz + 16 * b, _mm256_add_ps(_mm256_mul_ps(dlo, s), _mm256_mul_ps(zlo, t)),            \
                    _mm256_add_ps(_mm256_mul_ps(dhi, s), _mm256_mul_ps(zhi, t)));                       \
        }                                                                                                \
        for (size_t i = 16 * blocks; i < n; i++) dz[i] = to_##T(to_float(dz[i]) * 1.0001f + to_float(z[i]) * 0.5f); \
    }

BENCH_HALF_VECTOR_LOOPS(f16, f16_hw, BENCH_F16C)

// bf16: to f32 is a shift; to bf16 is AVX512-BF16's vcvtneps2bf16 (round to nearest even, like
// iabn; it also flushes subnormals, which the bench's data do not have).
BENCH_AVX512BF16 inline __m512 load16(const bf16* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // maskz with every lane set: the unmasked form trips g++ 12's -Wmaybe-uninitialized in its own
    // header.
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}
BENCH_AVX512BF16 inline void store16(bf16* p, __m512 v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}

BENCH_AVX512BF16 void scale_bf16_hw(bf16* x, size_t n) {
    const size_t blocks = n / 16;
    const __m512 s = _mm512_set1_ps(1.0001f), t = _mm512_set1_ps(0.5f);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        store16(x + 16 * b, _mm512_add_ps(_mm512_mul_ps(load16(x + 16 * b), s), t));
    }
    for (size_t i = 16 * blocks; i < n; i++) x[i] = to_bf16(to_float(x[i]) * 1.0001f + 0.5f);
}

BENCH_AVX512BF16 double read_bf16_hw(const bf16* x, size_t n) {
    const size_t blocks = n / 16;
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        __m512 sum = _mm512_setzero_ps();  // one vector of f32 sums per thread
#pragma omp for schedule(static)
        for (size_t b = 0; b < blocks; b++) sum = _mm512_add_ps(sum, load16(x + 16 * b));
        total += _mm512_reduce_add_ps(sum);
    }
    for (size_t i = 16 * blocks; i < n; i++) total += to_float(x[i]);
    return total;
}

BENCH_AVX512BF16 void combine_bf16_hw(bf16* dz, const bf16* z, size_t n) {
    const size_t blocks = n / 16;
    const __m512 s = _mm512_set1_ps(1.0001f), t = _mm512_set1_ps(0.5f);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        const __m512 d = load16(dz + 16 * b), zz = load16(z + 16 * b);
        store16(dz + 16 * b, _mm512_add_ps(_mm512_mul_ps(d, s), _mm512_mul_ps(zz, t)));
    }
    for (size_t i = 16 * blocks; i < n; i++) dz[i] = to_bf16(to_float(dz[i]) * 1.0001f + to_float(z[i]) * 0.5f);
}

// bf16 in AVX2 (no conversion instruction): 16 elements at a time. Interleaving the 16-bit
// elements with zeros (unpack) puts each one in the upper half of a 32-bit lane, which is its f32;
// the unpack takes elements 0-3 and 8-11 (lo), 4-7 and 12-15 (hi), and the saturating pack of
// the rounded halves puts them back in order. Rounding is to_bf16's (floor.h), eight lanes at a
// time. (The compiler's vectorization of to_bf16 ran at half this speed on an AMD EPYC.)
#define BENCH_AVX2 __attribute__((target("avx2,fma")))
BENCH_AVX2 inline void load16(const bf16* p, __m256& lo, __m256& hi) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), h));
    hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), h));
}
BENCH_AVX2 inline __m256i round_bf16(__m256 v) {  // the bf16 bits in the low half of each lane
    const __m256i b = _mm256_castps_si256(v);
    const __m256i upper = _mm256_srli_epi32(b, 16);
    const __m256i odd = _mm256_and_si256(upper, _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), odd), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(rounded, _mm256_or_si256(upper, _mm256_set1_epi32(0x40)), nan);
}
BENCH_AVX2 inline void store16(bf16* p, __m256 lo, __m256 hi) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_packus_epi32(round_bf16(lo), round_bf16(hi)));
}

BENCH_HALF_VECTOR_LOOPS(bf16, bf16_avx2, BENCH_AVX2)

bool f16_hw() {
    static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    return yes;
}
bool bf16_hw() {
    static const bool yes = __builtin_cpu_supports("avx512bf16") != 0;
    return yes;
}
bool bf16_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") != 0;
    return yes;
}
#endif

}  // namespace

#ifdef BENCH_X86
void floor_scale(f16* x, size_t n, int) { f16_hw() ? scale_f16_hw(x, n) : scale_f16_bits(x, n); }
double floor_read(const f16* x, size_t n, int) { return f16_hw() ? read_f16_hw(x, n) : read_f16_bits(x, n); }
void floor_combine(f16* dz, const f16* z, size_t n, int) {
    f16_hw() ? combine_f16_hw(dz, z, n) : combine_f16_bits(dz, z, n);
}
void floor_scale(bf16* x, size_t n, int) {
    bf16_hw() ? scale_bf16_hw(x, n) : bf16_avx2() ? scale_bf16_avx2(x, n) : scale_bf16_bits(x, n);
}
double floor_read(const bf16* x, size_t n, int) {
    return bf16_hw() ? read_bf16_hw(x, n) : bf16_avx2() ? read_bf16_avx2(x, n) : read_bf16_bits(x, n);
}
void floor_combine(bf16* dz, const bf16* z, size_t n, int) {
    bf16_hw() ? combine_bf16_hw(dz, z, n) : bf16_avx2() ? combine_bf16_avx2(dz, z, n) : combine_bf16_bits(dz, z, n);
}
std::string floor_conversions() {
    std::string out = f16_hw() ? "f16 F16C" : "f16 on the bits, one element at a time (may be slower than memory)";
    out += bf16_hw() ? ", bf16 vcvtneps2bf16" : bf16_avx2() ? ", bf16 on the bits (AVX2)" : ", bf16 on the bits (SSE2)";
    return out;
}
#else
void floor_scale(f16* x, size_t n, int) { scale_f16_bits(x, n); }
double floor_read(const f16* x, size_t n, int) { return read_f16_bits(x, n); }
void floor_combine(f16* dz, const f16* z, size_t n, int) { combine_f16_bits(dz, z, n); }
void floor_scale(bf16* x, size_t n, int) { scale_bf16_bits(x, n); }
double floor_read(const bf16* x, size_t n, int) { return read_bf16_bits(x, n); }
void floor_combine(bf16* dz, const bf16* z, size_t n, int) { combine_bf16_bits(dz, z, n); }
std::string floor_conversions() {
    return "f16 on the bits, one element at a time (may be slower than memory), bf16 on the bits";
}
#endif

// The 16-bit floors run on vectors of the CPU's conversions: each must give, bit for bit, what the
// element-wise conversions of floor.h give (a NaN any NaN), on an odd-sized, misaligned buffer with ties, NaNs and
// infinities (so the vector blocks and the element tail both run), and write nothing outside it.
namespace {
template <typename T, T (*to_half)(float)>
void check_half_floor(const char* name) {
    const size_t n = 4099;
    std::vector<T> x0(n + 2), z(n + 2);
    const float specials[] = {std::nanf(""), -std::nanf(""), INFINITY, -INFINITY, 0.0f, -0.0f, 1.00390625f, -3.5f};
    for (size_t i = 0; i < n + 2; i++) {
        x0[i] = to_half(i % 37 < 8 ? specials[i % 37] : 0.37f * float(i % 101) - 17.0f);
        z[i] = to_half(0.5f * float(i % 5) - 1.0f);
    }
    std::vector<T> scaled(x0), combined(x0);
    floor_scale(scaled.data() + 1, n);
    floor_combine(combined.data() + 1, z.data() + 1, n);
    double want_read = 0;
    bool same = std::memcmp(&scaled[0], &x0[0], sizeof(T)) == 0 && std::memcmp(&scaled[n + 1], &x0[n + 1], sizeof(T)) == 0 &&
                std::memcmp(&combined[0], &x0[0], sizeof(T)) == 0 && std::memcmp(&combined[n + 1], &x0[n + 1], sizeof(T)) == 0;
    for (size_t i = 1; i <= n; i++) {
        const T s = to_half(to_float(x0[i]) * 1.0001f + 0.5f);
        const T c = to_half(to_float(x0[i]) * 1.0001f + to_float(z[i]) * 0.5f);
        auto equal = [](T a, T b) { return a.bits == b.bits || (std::isnan(to_float(a)) && std::isnan(to_float(b))); };
        same = same && equal(scaled[i], s) && equal(combined[i], c);
        if (std::isfinite(to_float(x0[i]))) want_read += to_float(x0[i]);
    }
    // The read's sum, over finite values only (the NaNs would hide any difference).
    std::vector<T> finite(x0.begin() + 1, x0.end() - 1);
    for (T& v : finite) {
        if (!std::isfinite(to_float(v))) v = to_half(0.0f);
    }
    const double got_read = floor_read(finite.data(), n);
    same = same && std::fabs(got_read - want_read) <= 1e-5 * (1 + std::fabs(want_read));
    if (!same) throw std::runtime_error(std::string("the ") + name + " floor computes other values than its conversions");
}
}  // namespace

void check_half_floors() {
    check_half_floor<f16, to_f16>("f16");
    check_half_floor<bf16, to_bf16>("bf16");
}

}  // namespace bench
