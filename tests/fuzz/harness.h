// The shared vocabulary of the iabn_fuzz_api harness (fuzz_api.cpp: what it fuzzes, the oracle,
// the input format): the arena and the process's settings, findings, the choice bytes, the
// buffers and calls, and one declaration for what each of the other files does:
//   setup.cpp             the arena, the guard, the environment
//   findings.cpp          reporting a finding (abort, or keep going), the counts, the summary
//   shapes.cpp            dtypes, shapes and views as the rules see them
//   buffers.cpp           buffers and calls: describing them, their values as doubles
//   rules.cpp             model(): what a call must refuse, what the rules leave open
//   build_calls.cpp       building a call (general or valid) from the choice bytes
//   data.cpp              filling the arena with the data of a call
//   numerics.cpp          the outputs against the float64 reference, in the well-scaled domain
//   run_call.cpp          running a call and judging it
//   inplace_abn_mode.cpp  InPlaceABN: construct, copy, move, forward, backward, destroy
#pragma once

#include "half.h"

#include <iabn/iabn.h>

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace iabn_fuzz {

using iabn::Activation;
using iabn::DType;
using iabn::Device;
using iabn::Layout;

constexpr size_t kArena = size_t{64} << 10;
constexpr size_t kGuard = size_t{1} << 20;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Process-wide setup.

struct Setup {
    unsigned char* arena = nullptr;  // kArena bytes, a PROT_NONE page on each side
    unsigned char* guard = nullptr;  // kGuard bytes of PROT_NONE
    bool cuda_allowed = false;       // Device::cuda may be passed: no CUDA driver can be loaded
    bool keep_going = false, report_all = false, verbose = false;
    std::set<std::string> ignored;   // rules treated as open
    std::set<std::string> skipped;   // calls refused by these rules are not made
    std::string findings_dir;
    std::string only;                // report only findings whose kind starts with this
};

Setup& setup();
void init();  // maps the arena and the guard, reads the environment (IABN_FUZZ_*)

// ---------------------------------------------------------------------------------------------
// Findings (findings.cpp).

extern const uint8_t* g_input;  // the input being run (written out with a finding)
extern size_t g_input_size;
extern long g_calls, g_refused, g_compared, g_compared16, g_unchecked;

void summary();  // the counts and findings of the keep-going mode (at exit)
// kind: a short stable name (the keep-going mode reports each kind once); detail: what happened.
void finding(const std::string& kind, const std::string& detail);
[[noreturn]] void harness_bug(const std::string& what);

// ---------------------------------------------------------------------------------------------
// Input bytes and data values.

class Choices {
public:
    Choices(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    size_t pick(size_t n) { return byte() % n; }
    bool flag() { return byte() & 1; }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | byte();
        return v;
    }
    uint16_t u16() { return static_cast<uint16_t>(byte() << 8 | byte()); }
    // One byte: below `wild_from`, an ordinary value; from it on, a wild one.
    template <typename T, size_t N, size_t K>
    T menu(const T (&ordinary)[N], const T (&wild)[K], uint8_t wild_from) {
        const uint8_t b = byte();
        return b < wild_from ? ordinary[b % N] : wild[(b - wild_from) % K];
    }

private:
    const uint8_t* data_;
    size_t size_, pos_ = 0;
};

class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    double uniform(double lo, double hi) { return lo + (hi - lo) * unit(); }
    double normal() {
        const double u1 = 1.0 - unit(), u2 = unit();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
    double sign() { return (next() & 1) ? 1.0 : -1.0; }
    double signed_uniform(double lo, double hi) { return sign() * uniform(lo, hi); }
    size_t below(size_t n) { return static_cast<size_t>(next() % n); }

private:
    uint64_t s_;
};

// ---------------------------------------------------------------------------------------------
// Dtypes, shapes and views as the rules see them (shapes.cpp).

inline bool valid_enum(DType t) { return static_cast<int>(t) >= 0 && static_cast<int>(t) <= 3; }
// Every dtype of the enum has kernels (f16 and bf16 since 28817be): only values outside it are wild.
inline bool computable(DType t) { return valid_enum(t); }
inline bool sixteen_bits(DType t) { return t == DType::f16 || t == DType::bf16; }
// The tests' own 16-bit conversions (tests/support/half.h), independent of the library's.
inline iabn_test::HalfFormat half_format(DType t) { return t == DType::f16 ? iabn_test::kF16 : iabn_test::kBF16; }
// An activation of the enum (iabn::kActivations); every other value is wild.
inline bool valid_activation(Activation a) {
    return static_cast<int>(a) >= 0 && static_cast<int>(a) < iabn::kActivationCount;
}
// Element size; an invalid enum value is given the largest, so its buffer has room in any case.
size_t elem_bytes(DType t);
// Per-channel buffers: f64 for f64 tensors, f32 otherwise (16-bit tensors included).
inline DType channel_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }
inline double min_normal(DType cd) { return cd == DType::f64 ? DBL_MIN : FLT_MIN; }
inline double max_finite(DType cd) { return cd == DType::f64 ? DBL_MAX : FLT_MAX; }
inline bool valid_layout(Layout l) { return l == Layout::nchw || l == Layout::nhwc; }

std::string str(double v);
std::string str(const std::vector<int64_t>& s);
const char* dtype_name(DType t);

// Declared byte size: nullopt when a dim is <= 0 or the size does not fit in 63 bits.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, DType t);
int64_t numel(const std::vector<int64_t>& shape);  // only for shapes whose byte size fits
// Channels of a shape: dim 1 (nchw) or the last (nhwc); for ranks < 2, what a per-channel buffer
// is then sized by (the call is refused anyway).
int64_t channels_of(const std::vector<int64_t>& shape, Layout layout);
// The 3-D view the kernels run on (runtime/view.cpp): every extent and stride < 2^31.
// For rank 2..5 shapes with positive dims and a byte size that fits.
bool view_fits(const std::vector<int64_t>& s, Layout layout);

// ---------------------------------------------------------------------------------------------
// Buffers and calls (buffers.cpp).

enum class Where { null, arena, guard, heap };

struct Buf {
    iabn::TensorRef ref;
    Where where = Where::null;
    std::optional<uint64_t> bytes;  // declared byte size
    size_t offset = 0;              // in the arena
    bool given() const { return ref.data != nullptr; }
    uintptr_t addr() const { return reinterpret_cast<uintptr_t>(ref.data); }
    bool aligned() const { return addr() % elem_bytes(ref.dtype) == 0; }
};

enum Ch { W, B, RM, RV, SM, SI, WG, BG, kChannelBuffers };
const char* const kChName[kChannelBuffers] = {"weight",     "bias",         "running_mean", "running_var",
                                              "saved_mean", "saved_invstd", "weight_grad",  "bias_grad"};

struct Call {
    bool backward = false;
    Buf x, dz;  // x: forward's x or backward's z
    Buf ch[kChannelBuffers];
    iabn::Options o;
    int threads = 1;

    const char* x_name() const { return backward ? "z" : "x"; }
    bool batch() const { return o.training && !o.use_global_stats; }
    int64_t channels() const { return channels_of(x.ref.shape, o.layout); }
    iabn::ChannelState state() const {
        return {ch[W].ref, ch[B].ref, ch[RM].ref, ch[RV].ref, ch[SM].ref, ch[SI].ref};
    }
    iabn::ParamGrads grads() const { return {ch[WG].ref, ch[BG].ref}; }
    // Per-channel buffers the call reads or writes, required ones, and written ones.
    bool used(int i) const {
        if (!backward) return i == W || i == B || i == RM || i == RV || (batch() && (i == SM || i == SI));
        return i == W || i == B || i == WG || i == BG || (batch() ? i == SI : i == RV);
    }
    bool required(int i) const {
        if (!backward) return i == RM || i == RV || (batch() && (i == SM || i == SI));
        return batch() ? i == SI : i == RV;
    }
    bool written(int i) const {
        if (!backward) return batch() && (i == RM || i == RV || i == SM || i == SI);
        return i == WG || i == BG;
    }
};

std::string describe(const Call& c);

// Stores v rounded to nearest (ties to even in 16 bits, NaN kept: half.h's to_bits).
void store(unsigned char* p, DType t, double v);

// The values of a buffer as doubles (any dtype of the enum, aligned, in the arena or on the heap),
// read from `arena` (an image of the arena: the snapshot before the call, or the live one) or, for
// heap buffers, from `heap` (its bytes before the call) when given, else from its own memory.
bool readable(const Buf& b);
std::vector<double> values(const Buf& b, const unsigned char* arena, const unsigned char* heap = nullptr);

// ---------------------------------------------------------------------------------------------
// The rules: what a call must refuse, what they leave open, what it may write (rules.cpp).

struct Verdict {
    std::vector<std::string> refuse;  // "rule: detail": the call must throw iabn::Error
    std::vector<std::string> open;    // the rules allow either outcome
    bool ignored = false;             // a refusal was turned into `open` by IABN_FUZZ_IGNORE
    bool must_refuse() const { return !refuse.empty(); }
    bool must_accept() const { return refuse.empty() && open.empty(); }
};

// `heap`: the bytes before the call of each heap per-channel buffer (InPlaceABN), or null.
// `ignore`: apply IABN_FUZZ_IGNORE.
Verdict model(const Call& c, const unsigned char* arena, const std::vector<unsigned char>* heap, bool ignore = true);

// ---------------------------------------------------------------------------------------------
// Building calls from the choices (build_calls.cpp).

struct Gen {
    Choices& in;
    Rng& rng;
    size_t next_free = 0;
    std::vector<const Buf*> placed;  // arena buffers placed so far (for aliasing)
};

enum class Place { fresh, end, misaligned, alias, anywhere, null };

Place place_choice(Choices& in);
// Points b (dtype, shape and device set) into the arena or the guard; `refused_alone`: its own
// properties make any call with it refused, so it may point at the guard when it does not fit.
// Returns false when it can neither be backed nor is refused (the harness then skips the call).
bool place(Gen& g, Buf& b, Place how, bool refused_alone);
// f16 and bf16 from 192 to 231, f32 and f64 for the other bytes below 240; from 240 on the menu
// that was the wild one when 16 bits were refused (f16, bf16 and two values outside the enum).
// Bytes outside 192..231 mean what they meant before 16 bits: the regression inputs keep their calls.
DType call_dtype(Choices& in);
iabn::Options options_choice(Choices& in);
std::vector<int64_t> shape_choice(Choices& in);
// Whether a tensor is refused whatever the rest of the call (so it may point at the guard).
bool tensor_refused_alone(const Buf& b, Layout layout);
// A shape the rules accept but too big for the arena: halve its largest dims until it fits in
// `limit` bytes with at most 1024 channels (so every [C] buffer fits too).
void clamp(std::vector<int64_t>& shape, DType t, Layout layout, uint64_t limit);
// A general call: anything.
bool general_call(Gen& g, Call& c);
// A valid call: small shapes, sane options, separate aligned buffers (read-only ones may alias).
void valid_call(Gen& g, Call& c);

// ---------------------------------------------------------------------------------------------
// Data (data.cpp).

// Fills the arena: moderate background values, then every buffer by its role. `poison`: outputs
// get NaN (an output the call forgets to write then fails the comparison).
void fill(Choices& in, Rng& rng, Call& c, bool poison);

// ---------------------------------------------------------------------------------------------
// Numerics: the outputs against the float64 reference, in the well-scaled domain only
// (numerics.cpp).

struct Inputs {  // a call's per-channel inputs as doubles (empty: absent)
    std::vector<double> w, b, rm, rv, si;
};

// Forward numerics. `x0`: x before; `after`: reads an output after the call.
void check_forward_numerics(const Call& c, const std::vector<double>& x0, const Inputs& in,
                            const std::function<std::vector<double>(int)>& after, const std::vector<double>& z);
// Backward numerics. `z`, `dz0`: z and dz before; `after`: reads an output after the call.
void check_backward_numerics(const Call& c, const std::vector<double>& z, const std::vector<double>& dz0,
                             const Inputs& in, const std::function<std::vector<double>(int)>& after,
                             const std::vector<double>& dx);

// ---------------------------------------------------------------------------------------------
// Running a call and judging it (run_call.cpp).

// Runs `call` and judges it. `heap_before`/`heap_after`: the InPlaceABN state (per-channel
// buffers on the heap) before, and a reader of it after; empty for functional calls.
void run(const Call& c, const std::function<void()>& call, const std::vector<unsigned char>* heap_before,
         const std::function<std::vector<unsigned char>(int)>& heap_now);
void run_functional(const Call& c);  // iabn::forward or iabn::backward

// ---------------------------------------------------------------------------------------------
// InPlaceABN: construct, copy, move, forward, backward, destroy (inplace_abn_mode.cpp).

void inplace_abn_mode(Choices& in, Rng& rng, int threads);

}  // namespace iabn_fuzz
