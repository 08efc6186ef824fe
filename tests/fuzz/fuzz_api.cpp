// iabn_fuzz_api: a libFuzzer target on iabn's public API (include/iabn/iabn.h).
//
// Each input becomes one call of iabn::forward or iabn::backward, or a short life of InPlaceABN
// objects (construct, copy, move, forward, backward, destroy), on buffers that all point into
// one real 64 KiB arena (between two PROT_NONE pages) or, when their declared size is absurd,
// into a PROT_NONE guard mapping that no accepted call may touch. See tests/fuzz/README.md for
// how to build and run it, and the input format below.
//
// The oracle, for every call:
//  * iabn::Error thrown: every byte of the arena (and of the InPlaceABN state) is what it was;
//    and the call is not a valid one (below), else "rejected-valid";
//  * any other exception, a crash, a sanitizer report or a hang: a finding;
//  * success: no byte outside the buffers the call may write changed; the call is not one the
//    rules refuse ("accepted-invalid:<rule>"); and, where the data are in the well-scaled domain,
//    every output matches the float64 reference (tests/reference.cpp) computed from the bytes as
//    they were before the call, within a tolerance derived from the dtype (tests/compare.h).
//    16-bit tensors (f16, bf16) are read and written through tests/half.h; their outputs add
//    one rounding to the f32 budget, and an f16 result beyond 65504 must be inf, never NaN.
// The rules (what must be refused: model() below) are docs/semantics.md's "Bad input" list with the
// validation changes of the runtime: rank outside 2..5; a dimension <= 0; a byte size beyond
// 63 bits, view extents or strides >= 2^31 elements; a null required buffer; a data pointer not
// aligned to its element size; per-channel buffers of the wrong length, dtype or device;
// activation_param <= 0 or non-finite (leaky_relu, elu); epsilon outside the normal range of the
// per-channel dtype (smallest normal to largest finite); momentum outside [0, 1]; batch statistics
// with M < 2; a written buffer overlapping any other buffer of the call; running_var < 0 or NaN
// with global statistics; a zero or subnormal effective scale in backward; a dtype outside the
// enum (f16, bf16, f32, f64: f16 and bf16 tensors take f32 per-channel buffers); Device::cuda (no
// driver here); a moved-from InPlaceABN. What the rules leave open (buffers the call does not use,
// momentum in backward) may be accepted or refused.
//
// Modes (first byte % 4): 0, 1 "general": anything, from menus of ordinary and wild values;
// 2 "valid": a call the harness builds to be valid (an iabn::Error is a finding); 3 InPlaceABN.
//
// Input format: a stream of choice bytes read from the front; reading past the end gives 0, and
// 0 is the most ordinary choice of every menu. After the mode byte: 8 bytes seed the generator
// of the data values (moderate, finite values per channel: ordinary, |mean| = up to 1e4 x std,
// constant channels, ELU-saturating channels, and in 16 bits ELU channels at the edge of
// saturation), then the call's choices in the order the code
// below reads them (threads, options, dtype, rank, dims, placement of every buffer, ...).
//
// Environment: IABN_FUZZ_KEEP_GOING=1 reports each kind of finding once (on stderr, and the
// input into IABN_FUZZ_FINDINGS_DIR when set) and goes on, instead of aborting on the first
// (=all: reports every one);
// IABN_FUZZ_IGNORE=rule,rule (e.g. overlap,epsilon) treats those rules as open; IABN_FUZZ_SKIP=rule,...
// does not make the calls those rules refuse, "copy" no InPlaceABN copies; IABN_FUZZ_ONLY=<kind prefix> reports only those findings (to minimize a reproducer of
// one kind with -minimize_crash=1); IABN_FUZZ_VERBOSE=1 prints every call.
#include "compare.h"
#include "half.h"
#include "reference.h"

#include <iabn/iabn.h>

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

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

Setup& setup() {
    static Setup s;
    return s;
}

void init() {
    Setup& s = setup();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kArena + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* g = mmap(nullptr, kGuard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED || g == MAP_FAILED) {
        std::perror("iabn_fuzz: mmap");
        std::abort();
    }
    auto* base = static_cast<unsigned char*>(p);
    if (mprotect(base, page, PROT_NONE) != 0 || mprotect(base + page + kArena, page, PROT_NONE) != 0) {
        std::perror("iabn_fuzz: mprotect");
        std::abort();
    }
    s.arena = base + page;
    s.guard = static_cast<unsigned char*>(g);
    // Host pointers passed as Device::cuda are only safe where no driver exists: the call must
    // fail before it reaches one. With a driver, Device::cuda is not fuzzed.
    void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    s.cuda_allowed = driver == nullptr;
    if (driver) dlclose(driver);
    auto env = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
    s.keep_going = env("IABN_FUZZ_KEEP_GOING") == "1" || env("IABN_FUZZ_KEEP_GOING") == "all";
    s.report_all = env("IABN_FUZZ_KEEP_GOING") == "all";
    s.verbose = env("IABN_FUZZ_VERBOSE") == "1";
    s.findings_dir = env("IABN_FUZZ_FINDINGS_DIR");
    s.only = env("IABN_FUZZ_ONLY");
    for (auto [var, set] : {std::make_pair("IABN_FUZZ_IGNORE", &s.ignored), std::make_pair("IABN_FUZZ_SKIP", &s.skipped)}) {
        std::stringstream list(env(var));
        for (std::string rule; std::getline(list, rule, ',');) {
            if (!rule.empty()) set->insert(rule);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Findings.

const uint8_t* g_input = nullptr;
size_t g_input_size = 0;
std::map<std::string, long> g_findings;  // kind -> count (keep-going mode)
long g_calls = 0, g_refused = 0, g_compared = 0, g_compared16 = 0, g_unchecked = 0;

void summary() {
    if (!setup().keep_going) return;
    std::fprintf(stderr,
                 "iabn_fuzz: %ld calls, %ld refused, %ld compared with the reference (%ld on 16-bit tensors), %ld "
                 "outside the domain\n",
                 g_calls, g_refused, g_compared, g_compared16, g_unchecked);
    for (const auto& [kind, n] : g_findings) std::fprintf(stderr, "iabn_fuzz: finding %s: %ld\n", kind.c_str(), n);
}

// kind: a short stable name (the keep-going mode reports each kind once); detail: what happened.
void finding(const std::string& kind, const std::string& detail) {
    Setup& s = setup();
    if (kind.compare(0, s.only.size(), s.only) != 0) return;  // IABN_FUZZ_ONLY
    if (!s.keep_going) {
        std::fprintf(stderr, "iabn_fuzz: FINDING [%s] %s\n", kind.c_str(), detail.c_str());
        std::abort();
    }
    if (g_findings[kind]++ == 0 || s.report_all) {
        std::fprintf(stderr, "iabn_fuzz: FINDING [%s] %s\n", kind.c_str(), detail.c_str());
        if (!s.findings_dir.empty()) {
            std::string name;
            for (char ch : kind) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
            const std::string path = s.findings_dir + "/finding-" + name;
            if (FILE* f = std::fopen(path.c_str(), "wb")) {
                std::fwrite(g_input, 1, g_input_size, f);
                std::fclose(f);
            }
        }
    }
}

[[noreturn]] void harness_bug(const std::string& what) {
    std::fprintf(stderr, "iabn_fuzz: HARNESS BUG: %s\n", what.c_str());
    std::abort();
}

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
// Dtypes, shapes and views as the rules see them.

bool valid_enum(DType t) { return static_cast<int>(t) >= 0 && static_cast<int>(t) <= 3; }
// Every dtype of the enum has kernels (f16 and bf16 since 28817be): only values outside it are wild.
bool computable(DType t) { return valid_enum(t); }
bool sixteen_bits(DType t) { return t == DType::f16 || t == DType::bf16; }
// The tests' own 16-bit conversions (tests/half.h), independent of the library's.
iabn_test::HalfFormat half_format(DType t) { return t == DType::f16 ? iabn_test::kF16 : iabn_test::kBF16; }
// Element size; an invalid enum value is given the largest, so its buffer has room in any case.
size_t elem_bytes(DType t) {
    switch (static_cast<int>(t)) {
        case 0:
        case 1: return 2;
        case 2: return 4;
        default: return 8;
    }
}
// Per-channel buffers: f64 for f64 tensors, f32 otherwise (16-bit tensors included).
DType channel_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }
double min_normal(DType cd) { return cd == DType::f64 ? DBL_MIN : FLT_MIN; }
double max_finite(DType cd) { return cd == DType::f64 ? DBL_MAX : FLT_MAX; }
bool valid_layout(Layout l) { return l == Layout::nchw || l == Layout::nhwc; }

std::string str(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}
std::string str(const std::vector<int64_t>& s) {
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < s.size(); i++) out << (i ? ", " : "") << s[i];
    out << "]";
    return out.str();
}
const char* dtype_name(DType t) {
    switch (static_cast<int>(t)) {
        case 0: return "f16";
        case 1: return "bf16";
        case 2: return "f32";
        case 3: return "f64";
        default: return "invalid-dtype";
    }
}

// Declared byte size: nullopt when a dim is <= 0 or the size does not fit in 63 bits.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, DType t) {
    uint64_t n = elem_bytes(t);
    for (int64_t d : shape) {
        if (d <= 0) return std::nullopt;
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > uint64_t(INT64_MAX)) return std::nullopt;
    }
    return n;
}

int64_t numel(const std::vector<int64_t>& shape) {  // only for shapes whose byte size fits
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// Channels of a shape: dim 1 (nchw) or the last (nhwc); for ranks < 2, what a per-channel buffer
// is then sized by (the call is refused anyway).
int64_t channels_of(const std::vector<int64_t>& shape, Layout layout) {
    if (shape.empty()) return 1;
    if (shape.size() == 1) return shape[0];
    return layout == Layout::nhwc ? shape.back() : shape[1];
}

// The 3-D view the kernels run on (runtime/view.cpp): every extent and stride < 2^31.
// For rank 2..5 shapes with positive dims and a byte size that fits.
bool view_fits(const std::vector<int64_t>& s, Layout layout) {
    const int64_t n = numel(s);
    const int64_t spatial = n / (s[0] * s[1]);
    std::vector<int64_t> e;
    if (layout != Layout::nhwc && spatial > 1) {
        e = {spatial, s[1], s[0], 1, spatial, s[1] * spatial};
    } else {
        const int64_t c = layout == Layout::nhwc ? s.back() : s[1];
        e = {n / c, c, 1, c, 1, 0};
    }
    for (int64_t v : e) {
        if (v > INT32_MAX) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Buffers and calls.

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

std::string describe(const Buf& b, const char* name) {
    std::ostringstream out;
    out << name << "{";
    if (!b.given()) {
        out << "null";
    } else if (b.where == Where::arena) {
        out << "arena+" << b.offset;
    } else if (b.where == Where::guard) {
        out << "guard";
    } else {
        out << "heap";
    }
    out << " " << dtype_name(b.ref.dtype) << " " << str(b.ref.shape);
    if (b.ref.device != Device::cpu) out << " device " << static_cast<int>(b.ref.device);
    out << "}";
    return out.str();
}

std::string describe(const Call& c) {
    std::ostringstream out;
    const iabn::Options& o = c.o;
    out << (c.backward ? "backward" : "forward") << " threads " << c.threads << " act "
        << static_cast<int>(o.activation) << "(" << o.activation_param << ") eps " << o.epsilon << " momentum "
        << o.momentum << " layout " << static_cast<int>(o.layout) << (o.training ? " training" : " eval")
        << (o.use_global_stats ? " use_global_stats" : "") << (o.unbiased_running_var ? " unbiased" : "")
        << (o.abs_weight ? " abs_weight" : "") << " " << describe(c.x, c.x_name());
    if (c.backward) out << " " << describe(c.dz, "dz");
    for (int i = 0; i < kChannelBuffers; i++) {
        if (c.ch[i].given() || !c.ch[i].ref.shape.empty()) out << " " << describe(c.ch[i], kChName[i]);
    }
    return out.str();
}

// One element (16-bit ones through half.h: the bits as the library reads them).
double load(const unsigned char* p, DType t) {
    switch (t) {
        case DType::f64: {
            double d;
            std::memcpy(&d, p, 8);
            return d;
        }
        case DType::f32: {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        default: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return iabn_test::from_bits(half_format(t), h);
        }
    }
}

// Stores v rounded to nearest (ties to even in 16 bits, NaN kept: half.h's to_bits).
void store(unsigned char* p, DType t, double v) {
    switch (t) {
        case DType::f64: std::memcpy(p, &v, 8); break;
        case DType::f32: {
            const float f = static_cast<float>(v);
            std::memcpy(p, &f, 4);
            break;
        }
        default: {
            const uint16_t h = iabn_test::to_bits(half_format(t), v);
            std::memcpy(p, &h, 2);
        }
    }
}

// The values of a buffer as doubles (any dtype of the enum, aligned, in the arena or on the heap),
// read from `arena` (an image of the arena: the snapshot before the call, or the live one) or, for
// heap buffers, from `heap` (its bytes before the call) when given, else from its own memory.
bool readable(const Buf& b) {
    return b.given() && (b.where == Where::arena || b.where == Where::heap) && computable(b.ref.dtype) &&
           b.aligned() && b.bytes;
}

std::vector<double> values(const Buf& b, const unsigned char* arena, const unsigned char* heap = nullptr) {
    const unsigned char* p = b.where == Where::arena ? arena + b.offset
                             : heap                  ? heap
                                                     : static_cast<const unsigned char*>(b.ref.data);
    const int64_t n = numel(b.ref.shape);
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) v[static_cast<size_t>(i)] = load(p + elem_bytes(b.ref.dtype) * i, b.ref.dtype);
    return v;
}

// ---------------------------------------------------------------------------------------------
// The rules: what a call must refuse, what they leave open, what it may write.

struct Verdict {
    std::vector<std::string> refuse;  // "rule: detail": the call must throw iabn::Error
    std::vector<std::string> open;    // the rules allow either outcome
    bool ignored = false;             // a refusal was turned into `open` by IABN_FUZZ_IGNORE
    bool must_refuse() const { return !refuse.empty(); }
    bool must_accept() const { return refuse.empty() && open.empty(); }
};

// `heap`: the bytes before the call of each heap per-channel buffer (InPlaceABN), or null.
// `ignore`: apply IABN_FUZZ_IGNORE.
Verdict model(const Call& c, const unsigned char* arena, const std::vector<unsigned char>* heap, bool ignore = true) {
    Verdict v;
    const Setup& s = setup();
    auto rule = [&](bool refused, const std::string& id, const std::string& detail) {
        const bool ignored = ignore && s.ignored.count(id);
        if (refused && !ignored) {
            v.refuse.push_back(id + ": " + detail);
        } else {
            v.open.push_back(id + ": " + detail);
            v.ignored = v.ignored || (refused && ignored);
        }
    };
    auto refuse = [&](const std::string& id, const std::string& detail) { rule(true, id, detail); };
    const iabn::Options& o = c.o;
    const int act = static_cast<int>(o.activation), lay = static_cast<int>(o.layout);
    if (act < 0 || act > 2) refuse("enum", "activation " + std::to_string(act));
    if (lay < 0 || lay > 1) refuse("enum", "layout " + std::to_string(lay));
    if ((act == 1 || act == 2) && !(std::isfinite(o.activation_param) && o.activation_param > 0)) {
        refuse("activation_param", str(o.activation_param));
    }
    const bool batch = c.batch();
    const DType cd = channel_dtype(c.x.ref.dtype);
    if (!(o.epsilon >= min_normal(cd) && o.epsilon <= max_finite(cd))) refuse("epsilon", str(o.epsilon));
    if (!(o.momentum >= 0 && o.momentum <= 1)) rule(!c.backward, "momentum", str(o.momentum));

    auto tensor = [&](const Buf& b, const char* name) {
        const iabn::TensorRef& t = b.ref;
        const int dev = static_cast<int>(t.device);
        if (dev != 0) refuse(dev == 1 || dev == 2 ? "device" : "enum", std::string(name) + " device " + std::to_string(dev));
        if (!t.data) refuse("null", name);
        const size_t rank = t.shape.size();
        const bool rank_ok = rank >= 2 && rank <= 5;
        if (!rank_ok) refuse("rank", std::string(name) + " " + str(t.shape));
        bool dims_ok = true;
        for (int64_t d : t.shape) dims_ok = dims_ok && d > 0;
        if (!dims_ok) refuse("dims", std::string(name) + " " + str(t.shape));
        if (!computable(t.dtype)) {
            refuse("enum", std::string(name) + " " + dtype_name(t.dtype));
        } else if (dims_ok && !b.bytes) {
            refuse("size", std::string(name) + " " + str(t.shape) + ": byte size beyond 2^63");
        } else if (dims_ok && rank_ok && !view_fits(t.shape, valid_layout(o.layout) ? o.layout : Layout::nchw)) {
            refuse("extent", std::string(name) + " " + str(t.shape) + ": a view extent or stride >= 2^31");
        }
        if (t.data && computable(t.dtype) && !b.aligned()) {
            refuse("alignment", std::string(name) + " at address % " + std::to_string(elem_bytes(t.dtype)) + " = " +
                                    std::to_string(b.addr() % elem_bytes(t.dtype)));
        }
    };
    tensor(c.x, c.x_name());
    if (c.backward) {
        tensor(c.dz, "dz");
        if (c.dz.ref.shape != c.x.ref.shape) refuse("mismatch", "dz shape " + str(c.dz.ref.shape));
        if (c.dz.ref.dtype != c.x.ref.dtype) refuse("mismatch", std::string("dz dtype ") + dtype_name(c.dz.ref.dtype));
    }
    const int64_t C = channels_of(c.x.ref.shape, o.layout);
    for (int i = 0; i < kChannelBuffers; i++) {
        const Buf& b = c.ch[i];
        const std::string name = kChName[i];
        if (!b.given()) {
            if (c.required(i)) refuse("null", name);
            continue;  // absent (data == nullptr): whatever its shape, dtype and device
        }
        const bool used = c.used(i);
        const int dev = static_cast<int>(b.ref.device);
        if (dev != 0) rule(used, dev == 1 || dev == 2 ? "device" : "enum", name + " device " + std::to_string(dev));
        if (b.ref.shape != std::vector<int64_t>{C}) rule(used, "channel_shape", name + " " + str(b.ref.shape));
        if (b.ref.dtype != cd) rule(used, valid_enum(b.ref.dtype) ? "channel_dtype" : "enum", name + " " + dtype_name(b.ref.dtype));
        if (valid_enum(b.ref.dtype) && !b.aligned()) rule(used, "alignment", name);
    }
    // M < 2 with batch statistics (for a shape the rules otherwise accept).
    if (batch && c.x.bytes && c.x.ref.shape.size() >= 2 && c.x.ref.shape.size() <= 5 && C > 0 && numel(c.x.ref.shape) / C < 2) {
        refuse("M<2", std::string(c.x_name()) + " " + str(c.x.ref.shape));
    }
    // Overlap: a written buffer and any other buffer of the call.
    struct Range {
        uintptr_t lo, hi;
        std::string name;
        bool written, used;
    };
    std::vector<Range> ranges;
    auto add = [&](const Buf& b, const std::string& name, bool written, bool used) {
        if (b.given() && b.bytes) ranges.push_back({b.addr(), b.addr() + static_cast<uintptr_t>(*b.bytes), name, written, used});
    };
    add(c.x, c.x_name(), !c.backward, true);
    if (c.backward) add(c.dz, "dz", true, true);
    for (int i = 0; i < kChannelBuffers; i++) add(c.ch[i], kChName[i], c.written(i), c.used(i));
    for (size_t a = 0; a < ranges.size(); a++) {
        for (size_t b = a + 1; b < ranges.size(); b++) {
            const Range &p = ranges[a], &q = ranges[b];
            if (!(p.written || q.written) || !(p.lo < q.hi && q.lo < p.hi)) continue;
            rule(p.used && q.used, "overlap", p.name + " and " + q.name);
        }
    }
    // Values the rules look at: running_var with global statistics, the scale in backward.
    auto channel_values = [&](int i) -> std::optional<std::vector<double>> {
        const Buf& b = c.ch[i];
        if (!readable(b) || b.ref.shape != std::vector<int64_t>{C} || b.ref.dtype != cd) return std::nullopt;
        return values(b, arena, heap ? heap[i].data() : nullptr);
    };
    if (!batch) {
        if (auto rv = channel_values(RV)) {
            for (size_t k = 0; k < rv->size(); k++) {
                if ((*rv)[k] < 0 || std::isnan((*rv)[k])) {
                    refuse("running_var", "channel " + std::to_string(k) + ": " + str((*rv)[k]) + " with global statistics");
                    break;
                }
            }
        }
    }
    if (c.backward) {
        if (auto w = channel_values(W)) {
            for (size_t k = 0; k < w->size(); k++) {
                const double g = o.abs_weight ? std::fabs((*w)[k]) + o.epsilon : (*w)[k];
                if (g == 0 || std::fabs(g) < min_normal(cd)) {
                    refuse("scale", "channel " + std::to_string(k) + ": effective scale " + str(g));
                    break;
                }
            }
        }
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// Building calls from the choices.

const int64_t kSmallDims[] = {2, 3, 1, 4, 5, 7, 8, 6, 16, 13, 9, 17, 31, 32, 64, 2, 3, 10, 11, 12};
const int64_t kWildDims[] = {0,
                             -1,
                             -2,
                             int64_t(1) << 31,
                             (int64_t(1) << 31) - 1,
                             int64_t(1) << 32,
                             int64_t(1) << 62,
                             INT64_MAX,
                             INT64_MIN,
                             int64_t(1) << 20,
                             46341,
                             65537,
                             int64_t(1) << 40,
                             3037000500};

const double kParams[] = {1.0, 0.01, 0.3, 0.5, 2.0, 0.1, 1.0};
const double kWildParams[] = {0,    -0.0,   -0.5, kNaN,  kInf,    -kInf, 1e-300, 1e300,
                              5e-324, DBL_MIN, FLT_MIN, 1e-30, 1e30, 1e-8,  100,    -1};
const double kEps[] = {1e-5, 1e-3, 0.1, 1e-8, 1.0, 1e-5};
const double kWildEps[] = {0,       -0.0,        -1e-5,       kNaN,   kInf,         -kInf,  FLT_MIN,
                           FLT_MIN / 2, DBL_MIN,  DBL_MIN / 2, 5e-324, 1e-30,        1e-40,  1e30,
                           1e300,   1e-45,       std::nextafter(double(FLT_MIN), 0.0), 1e-20};
const double kMomentum[] = {0.9, 0.1, 0.0, 1.0, 0.5, 0.99};
const double kWildMomentum[] = {-0.0, -1e-300, std::nextafter(1.0, 2.0), -0.1, 1.5, kNaN, kInf, -kInf, 5e-324, 2};

struct Gen {
    Choices& in;
    Rng& rng;
    size_t next_free = 0;
    std::vector<const Buf*> placed;  // arena buffers placed so far (for aliasing)
};

// A slot for `bytes` bytes: fresh (after the previous ones) or, if none is left, anywhere.
size_t fresh_offset(Gen& g, uint64_t bytes, size_t align) {
    size_t off = (g.next_free + align - 1) / align * align + g.in.pick(4) * align;
    if (off + bytes > kArena) off = bytes <= kArena ? (g.rng.below((kArena - bytes) / align + 1)) * align : 0;
    g.next_free = std::max(g.next_free, static_cast<size_t>(off + bytes));
    return off;
}

enum class Place { fresh, end, misaligned, alias, anywhere, null };

Place place_choice(Choices& in) {
    static const Place table[16] = {Place::fresh, Place::fresh,      Place::fresh, Place::fresh,    Place::fresh,
                                    Place::fresh, Place::fresh,      Place::fresh, Place::fresh,    Place::end,
                                    Place::end,   Place::misaligned, Place::alias, Place::anywhere, Place::anywhere,
                                    Place::null};
    return table[in.pick(16)];
}

// Points b (dtype, shape and device set) into the arena or the guard; `refused_alone`: its own
// properties make any call with it refused, so it may point at the guard when it does not fit.
// Returns false when it can neither be backed nor is refused (the harness then skips the call).
bool place(Gen& g, Buf& b, Place how, bool refused_alone) {
    const Setup& s = setup();
    b.bytes = byte_size(b.ref.shape, b.ref.dtype);
    const size_t align = elem_bytes(b.ref.dtype);
    const size_t skew = how == Place::misaligned ? 1 + g.in.pick(align > 1 ? align - 1 : 1) : 0;
    if (how == Place::null) {
        b.ref.data = nullptr;
        b.where = Where::null;
        return true;
    }
    if (!b.bytes || *b.bytes + skew > kArena) {
        if (!refused_alone && b.bytes) return false;
        b.where = Where::guard;
        b.ref.data = s.guard + 64 * g.in.pick(16) + skew;
        return true;
    }
    const uint64_t n = *b.bytes + skew;
    size_t off = 0;
    switch (how) {
        case Place::fresh:
        case Place::misaligned: off = fresh_offset(g, n, align); break;
        case Place::end: off = (kArena - n) / align * align; break;
        case Place::alias:
            if (!g.placed.empty()) {
                const Buf* other = g.placed[g.in.pick(g.placed.size())];
                off = other->offset / align * align + g.in.pick(4) * align;
                if (off + n <= kArena) break;
            }
            off = fresh_offset(g, n, align);
            break;
        case Place::anywhere: off = (g.in.u16() % ((kArena - n) / align + 1)) * align; break;
        case Place::null: break;
    }
    b.offset = off + skew;
    b.where = Where::arena;
    b.ref.data = s.arena + b.offset;
    g.placed.push_back(&b);
    return true;
}

// f16 and bf16 from 192 to 231, f32 and f64 for the other bytes below 240; from 240 on the menu
// that was the wild one when 16 bits were refused (f16, bf16 and two values outside the enum).
// Bytes outside 192..231 mean what they meant before 16 bits: the regression inputs keep their calls.
DType call_dtype(Choices& in) {
    static const DType wide[] = {DType::f32, DType::f64};
    static const DType narrow[] = {DType::f16, DType::bf16};
    static const DType wild[] = {DType::f16, DType::bf16, static_cast<DType>(4), static_cast<DType>(-1)};
    const uint8_t b = in.byte();
    if (b >= 240) return wild[(b - 240) % 4];
    return b >= 192 && b < 232 ? narrow[b % 2] : wide[b % 2];
}

Device device_choice(Choices& in) {
    const uint8_t b = in.byte();
    if (b < 248) return Device::cpu;
    if (b < 252) return setup().cuda_allowed ? Device::cuda : Device::cpu;
    // Device::opencl (2) is refused in the fuzz build (tools/fuzz.sh builds no OpenCL kernels);
    // 3 and -1 are no device at all.
    if (b < 253) return Device::opencl;
    return static_cast<Device>(b < 254 ? 3 : -1);
}

iabn::Options options_choice(Choices& in) {
    iabn::Options o;
    static const Activation acts[] = {Activation::identity, Activation::leaky_relu, Activation::elu};
    static const Activation wild_acts[] = {static_cast<Activation>(3), static_cast<Activation>(-1),
                                           static_cast<Activation>(255)};
    o.activation = in.menu(acts, wild_acts, 250);
    o.activation_param = in.menu(kParams, kWildParams, 224);
    o.epsilon = in.menu(kEps, kWildEps, 224);
    o.momentum = in.menu(kMomentum, kWildMomentum, 232);
    static const Layout layouts[] = {Layout::nchw, Layout::nhwc};
    static const Layout wild_layouts[] = {static_cast<Layout>(2), static_cast<Layout>(-1)};
    o.layout = in.menu(layouts, wild_layouts, 250);
    const uint8_t bits = in.byte();
    o.training = !(bits & 1);
    o.use_global_stats = bits & 2;
    o.unbiased_running_var = bits & 4;
    o.abs_weight = bits & 8;
    if (bits & 16) o.cuda_stream = reinterpret_cast<void*>(uintptr_t{0x1000});  // ignored on the CPU
    // Skips the checks of device values only: host tensors are checked whatever it says, so the
    // refusal rules below do not depend on it.
    o.check_device_values = !(bits & 32);
    return o;
}

std::vector<int64_t> shape_choice(Choices& in) {
    static const size_t ranks[] = {4, 3, 2, 5, 4, 3, 2, 5};
    static const size_t wild_ranks[] = {0, 1, 6, 7};
    const size_t rank = in.menu(ranks, wild_ranks, 240);
    std::vector<int64_t> shape(rank);
    for (int64_t& d : shape) d = in.menu(kSmallDims, kWildDims, 236);
    return shape;
}

// Whether a tensor is refused whatever the rest of the call (so it may point at the guard).
bool tensor_refused_alone(const Buf& b, Layout layout) {
    const auto& s = b.ref.shape;
    if (s.size() < 2 || s.size() > 5 || !computable(b.ref.dtype) || b.ref.device != Device::cpu) return true;
    for (int64_t d : s) {
        if (d <= 0) return true;
    }
    if (!byte_size(s, b.ref.dtype)) return true;
    return !view_fits(s, valid_layout(layout) ? layout : Layout::nchw);
}

// A shape the rules accept but too big for the arena: halve its largest dims until it fits in
// `limit` bytes with at most 1024 channels (so every [C] buffer fits too).
void clamp(std::vector<int64_t>& shape, DType t, Layout layout, uint64_t limit) {
    const size_t cd = channel_dtype(t) == DType::f64 ? 8 : 4;
    for (;;) {
        const auto bytes = byte_size(shape, t);
        const int64_t c = channels_of(shape, layout);
        if (bytes && *bytes <= limit && c <= 1024 && uint64_t(c) * cd <= limit) return;
        auto it = std::max_element(shape.begin(), shape.end());
        if (bytes && *bytes <= limit) it = shape.begin() + (layout == Layout::nhwc ? shape.size() - 1 : 1);
        *it = std::max<int64_t>(1, *it / 2);
    }
}

// The per-channel buffers of a general call: mostly right ([C], the channel dtype, aligned),
// sometimes absent, aliased, misshapen, of another dtype or device, misaligned.
bool channel_buffers(Gen& g, Call& c) {
    const int64_t C = channels_of(c.x.ref.shape, c.o.layout);
    const DType cd = channel_dtype(c.x.ref.dtype);
    for (int i = 0; i < kChannelBuffers; i++) {
        Buf& b = c.ch[i];
        b.ref.dtype = cd;
        b.ref.shape = {C};
        Place how = Place::fresh;
        switch (g.in.pick(16)) {
            case 7: how = Place::null; b.ref.shape.clear(); break;
            case 8: how = Place::alias; break;
            case 9: how = Place::end; break;
            case 10: {
                static const std::vector<int64_t> deltas[] = {{C + 1}, {C - 1}, {0}, {1, C}, {C, 1}, {}, {2 * C}, {-C}};
                const size_t k = g.in.pick(9);
                b.ref.shape = k < 8 ? deltas[k] : std::vector<int64_t>{g.in.menu(kSmallDims, kWildDims, 128)};
                break;
            }
            case 11: {
                static const DType others[] = {DType::f64, DType::f32, DType::f16, DType::bf16, static_cast<DType>(9)};
                b.ref.dtype = others[g.in.pick(5)];
                if (b.ref.dtype == cd) b.ref.dtype = cd == DType::f32 ? DType::f64 : DType::f32;
                break;
            }
            case 12: b.ref.device = g.in.flag() && setup().cuda_allowed ? Device::cuda : static_cast<Device>(5); break;
            case 13: how = Place::misaligned; break;
            case 14: how = Place::null; break;  // absent, with the shape left set
            case 15: how = Place::anywhere; break;
            default: break;
        }
        const bool refused_alone = b.ref.shape != std::vector<int64_t>{C} || b.ref.dtype != cd ||
                                   b.ref.device != Device::cpu || tensor_refused_alone(c.x, c.o.layout);
        if (!place(g, b, how, refused_alone)) return false;
    }
    return true;
}

// A general call: anything.
bool general_call(Gen& g, Call& c) {
    Choices& in = g.in;
    c.backward = in.flag();
    c.o = options_choice(in);
    const DType dt = call_dtype(in);
    c.x.ref.dtype = dt;
    c.x.ref.shape = shape_choice(in);
    c.x.ref.device = device_choice(in);
    const Layout lay = valid_layout(c.o.layout) ? c.o.layout : Layout::nchw;
    if (!tensor_refused_alone(c.x, lay)) clamp(c.x.ref.shape, dt, lay, c.backward ? kArena / 4 : kArena / 2);
    if (!place(g, c.x, place_choice(in), tensor_refused_alone(c.x, lay))) return false;
    if (c.backward) {
        c.dz.ref = c.x.ref;
        c.dz.ref.data = nullptr;
        switch (in.pick(32)) {
            case 0: c.dz.ref.shape = shape_choice(in); break;
            case 1: c.dz.ref.dtype = call_dtype(in); break;
            case 2: c.dz.ref.device = device_choice(in); break;
            case 3: std::reverse(c.dz.ref.shape.begin(), c.dz.ref.shape.end()); break;
            default: break;
        }
        const bool refused = tensor_refused_alone(c.dz, lay) || c.dz.ref.shape != c.x.ref.shape ||
                             c.dz.ref.dtype != c.x.ref.dtype || tensor_refused_alone(c.x, lay);
        if (!place(g, c.dz, place_choice(in), refused)) return false;
    }
    if (!channel_buffers(g, c)) return false;
    // Every buffer on the device (a Device::cuda call that passes validation reaches the driver).
    if (c.x.ref.device == Device::cuda && in.flag()) {
        c.dz.ref.device = Device::cuda;
        for (Buf& b : c.ch) b.ref.device = Device::cuda;
    }
    return true;
}

// A valid call: small shapes, sane options, separate aligned buffers (read-only ones may alias).
void valid_call(Gen& g, Call& c) {
    Choices& in = g.in;
    c.backward = in.flag();
    iabn::Options& o = c.o;
    o.activation = static_cast<Activation>(in.pick(3));
    o.activation_param = kParams[in.pick(std::size(kParams))];
    static const double eps[] = {1e-5, 1e-3, 0.1, 1e-8, 1.0, -1};  // -1: the smallest normal
    o.epsilon = eps[in.pick(std::size(eps))];
    o.momentum = kMomentum[in.pick(std::size(kMomentum))];
    o.layout = in.flag() ? Layout::nhwc : Layout::nchw;
    const uint8_t bits = in.byte();
    o.training = !(bits & 1);
    o.use_global_stats = bits & 2;
    o.unbiased_running_var = bits & 4;
    o.abs_weight = bits & 8;
    // Bit 4: f64 (bf16 with bit 6); bit 6 (unused before 16 bits): a 16-bit dtype.
    const DType dt = (bits & 64) ? ((bits & 16) ? DType::bf16 : DType::f16) : ((bits & 16) ? DType::f64 : DType::f32);
    if (o.epsilon < 0) o.epsilon = min_normal(channel_dtype(dt));
    // Shape: rank 2..5, at most 2048 elements, C <= 256, M >= 2.
    static const int64_t dims[] = {2, 3, 1, 4, 5, 6, 7, 8, 11, 13, 16, 17, 32, 64, 1, 2};
    std::vector<int64_t> shape(2 + in.pick(4));
    for (int64_t& d : shape) d = dims[in.pick(std::size(dims))];
    const size_t cdim = o.layout == Layout::nhwc ? shape.size() - 1 : 1;
    while (numel(shape) > 2048 || shape[cdim] > 256) {
        auto it = std::max_element(shape.begin(), shape.end());
        *it = std::max<int64_t>(1, *it / 2);
    }
    const int64_t C = shape[cdim];
    if (numel(shape) / C < 2) shape[0] *= 2;  // (dim 0 is never the channel dim of such a shape)
    c.x.ref.dtype = dt;
    c.x.ref.shape = shape;
    const DType cd = channel_dtype(dt);
    const bool end_x = in.pick(4) == 0;
    if (!end_x) place(g, c.x, Place::fresh, false);
    if (c.backward) {
        c.dz.ref = c.x.ref;
        place(g, c.dz, Place::fresh, false);
    }
    const uint8_t present = in.byte();  // weight, bias, grads, unused buffers
    for (int i = 0; i < kChannelBuffers; i++) {
        Buf& b = c.ch[i];
        b.ref.dtype = cd;
        b.ref.shape = {C};
        bool given = c.required(i);
        if (i == W) given = !(present & 1);
        if (i == B) given = !(present & 2);
        if (i == WG) given = !(present & 4);
        if (i == BG) given = !(present & 8);
        if (!c.used(i)) given = present & 16;
        if (given) place(g, b, Place::fresh, false);
    }
    if (end_x) place(g, c.x, Place::end, false);
    // Read-only buffers may share memory: weight and bias the same [C] values.
    if ((present & 32) && c.ch[W].given() && c.ch[B].given()) {
        c.ch[B].ref.data = c.ch[W].ref.data;
        c.ch[B].offset = c.ch[W].offset;
    }
    if (g.next_free > kArena) harness_bug("valid call does not fit the arena");
}

// ---------------------------------------------------------------------------------------------
// Data.

// saturating: ELU pre-activations around -40, where z = -a in every dtype; edge (16-bit tensors
// only): pre-activations around ln(u), u the dtype's unit roundoff (2^-11 f16, 2^-8 bf16), so
// that z rounds to -a (saturates) for about half of them and lands a few steps above for the rest.
enum class ChannelKind { ordinary, ill, constant, saturating, edge };

struct DataPlan {
    std::vector<ChannelKind> kind;
    std::vector<double> mean, sd;  // the distribution of x per channel
};

// `x_dtype`: f16's largest finite value is 65504, so ill channels of f16 tensors keep |mean| at
// most 1e4 (their data stay finite; a stored inf would put the call outside the compared domain).
DataPlan plan_data(Choices& in, Rng& rng, int64_t C, bool elu, DType x_dtype) {
    const double largest_mean = x_dtype == DType::f16 ? 1e4 : kInf;
    DataPlan p;
    const uint8_t style = in.byte();  // 0..: all ordinary; then mixes with ill, constant, saturating
    const int mix = style < 160 ? 0 : 1 + style % 4;
    for (int64_t k = 0; k < C; k++) {
        ChannelKind kind = ChannelKind::ordinary;
        const size_t r = rng.below(4);
        if (mix == 1 && r == 0) kind = ChannelKind::ill;
        if (mix == 2 && r == 0) kind = ChannelKind::constant;
        if (mix == 3) kind = r == 0 ? ChannelKind::ill : r == 1 ? ChannelKind::constant : ChannelKind::ordinary;
        if (mix == 4 && elu && r < 2) {
            kind = r == 1 && sixteen_bits(x_dtype) ? ChannelKind::edge : ChannelKind::saturating;
        }
        double mean = rng.uniform(-2, 2), sd = rng.uniform(0.5, 2);
        if (kind == ChannelKind::ill) {
            static const double kappa[] = {1e2, 1e3, 1e4};
            sd = rng.next() & 1 ? 1.0 : 30.0;
            mean = rng.sign() * std::min(kappa[rng.below(3)] * sd, largest_mean);
        }
        if (kind == ChannelKind::constant) sd = 0;
        p.kind.push_back(kind);
        p.mean.push_back(mean);
        p.sd.push_back(sd);
    }
    return p;
}

bool shape_ok(const Buf& b, Layout layout) {
    return b.where == Where::arena && !tensor_refused_alone(b, layout) && b.aligned();
}

void fill_buffer(const Buf& b, const std::vector<double>& v) {
    if (!b.given() || b.where != Where::arena || !computable(b.ref.dtype) || !b.bytes) return;
    const size_t es = elem_bytes(b.ref.dtype);
    const size_t n = std::min<size_t>(v.size(), (kArena - b.offset) / es);
    for (size_t i = 0; i < n; i++) store(setup().arena + b.offset + i * es, b.ref.dtype, v[i]);
}

std::vector<double> per_channel(const Buf& b, int64_t C, const std::function<double(int64_t)>& f) {
    const int64_t n = b.bytes && computable(b.ref.dtype) ? std::min<int64_t>(numel(b.ref.shape), int64_t(kArena)) : 0;
    std::vector<double> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
    for (int64_t i = 0; i < n; i++) v[static_cast<size_t>(i)] = f(C > 0 ? i % C : 0);
    return v;
}

// Fills the arena: moderate background values, then every buffer by its role. `poison`: outputs
// get NaN (an output the call forgets to write then fails the comparison).
void fill(Choices& in, Rng& rng, Call& c, bool poison) {
    Setup& s = setup();
    const DType dt = computable(c.x.ref.dtype) ? c.x.ref.dtype : DType::f32;
    const size_t es = elem_bytes(dt);
    for (size_t off = 0; off + es <= kArena; off += es) store(s.arena + off, dt, rng.normal());
    const Layout lay = valid_layout(c.o.layout) ? c.o.layout : Layout::nchw;
    const int64_t C = std::max<int64_t>(1, std::min<int64_t>(channels_of(c.x.ref.shape, lay), 4096));
    const bool elu = c.o.activation == Activation::elu;
    const DataPlan p = plan_data(in, rng, C, elu, dt);
    const bool global = !c.batch();
    const uint8_t extra = poison ? 0 : in.byte();  // negative running_var, zero weight: the value rules
    auto kind = [&](int64_t k) { return p.kind[static_cast<size_t>(k)]; };
    fill_buffer(c.ch[W], per_channel(c.ch[W], C, [&](int64_t k) {
                    if (kind(k) == ChannelKind::saturating || kind(k) == ChannelKind::edge) return 0.5;
                    if (extra == 255 && k == 0) return 0.0;
                    if (extra == 254 && k == 0) return static_cast<double>(FLT_MIN) / 4;
                    const double w = rng.signed_uniform(0.5, 1.5);
                    return c.o.abs_weight && k == 0 ? -std::fabs(w) : w;
                }));
    fill_buffer(c.ch[B], per_channel(c.ch[B], C, [&](int64_t k) {
                    if (kind(k) == ChannelKind::edge) return std::log(half_format(dt).unit_roundoff());
                    return kind(k) == ChannelKind::saturating ? -40.0 : rng.uniform(-1, 1);
                }));
    fill_buffer(c.ch[RM], per_channel(c.ch[RM], C, [&](int64_t k) {
                    const size_t j = static_cast<size_t>(k);
                    return global ? p.mean[j] + rng.uniform(-0.3, 0.3) * std::max(p.sd[j], 0.5) : rng.uniform(-1, 1);
                }));
    fill_buffer(c.ch[RV], per_channel(c.ch[RV], C, [&](int64_t k) {
                    const size_t j = static_cast<size_t>(k);
                    if (extra == 253 && k == 0) return -0.5;
                    const double sd = std::max(p.sd[j], 0.5);
                    return global ? sd * sd * rng.uniform(0.7, 1.4) : rng.uniform(0.5, 2);
                }));
    for (int i : {SM, SI, WG, BG}) {
        if (c.written(i)) {
            fill_buffer(c.ch[i], per_channel(c.ch[i], C, [&](int64_t) { return poison ? kNaN : rng.normal(); }));
        } else {
            fill_buffer(c.ch[i], per_channel(c.ch[i], C, [&](int64_t) { return rng.uniform(0.5, 2); }));
        }
    }
    // x, or the x whose forward gives z.
    std::vector<double> x;
    const bool shaped = shape_ok(c.x, lay) && valid_layout(c.o.layout);
    if (shaped) {
        const int64_t n = numel(c.x.ref.shape);
        x.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) {
            const size_t k = static_cast<size_t>(ref::channel_of(i, c.x.ref.shape, lay));
            x[static_cast<size_t>(i)] = p.mean[k] + p.sd[k] * rng.normal();
        }
    }
    if (!c.backward) {
        if (shaped) fill_buffer(c.x, x);
        return;
    }
    // Backward: z = the forward of x (stored), saved_invstd its statistics; or z raw values.
    const bool raw = !shaped || in.pick(4) == 0;
    std::vector<double> xhat(x.size(), 0.0);
    if (!raw) {
        auto read = [&](int i) {
            return readable(c.ch[i]) && c.ch[i].ref.shape == std::vector<int64_t>{C} && c.ch[i].ref.dtype == channel_dtype(dt)
                       ? values(c.ch[i], s.arena)
                       : std::vector<double>();
        };
        std::vector<double> rm = read(RM), rv = read(RV);
        if (rm.empty()) rm.assign(static_cast<size_t>(C), 0.0);
        if (rv.empty()) rv.assign(static_cast<size_t>(C), 1.0);
        for (double& v : rv) v = std::fabs(v);
        iabn::Options o = c.o;
        if (static_cast<int>(o.activation) < 0 || static_cast<int>(o.activation) > 2) o.activation = Activation::identity;
        if (!(std::isfinite(o.epsilon) && o.epsilon > 0)) o.epsilon = 1e-5;
        if (!(std::isfinite(o.activation_param) && o.activation_param > 0)) o.activation_param = 1;
        const ref::ForwardResult f = ref::forward(x, c.x.ref.shape, read(W), read(B), rm, rv, o);
        fill_buffer(c.x, f.z);
        if (c.batch()) fill_buffer(c.ch[SI], f.saved_invstd);
        for (size_t i = 0; i < x.size(); i++) {
            const size_t k = static_cast<size_t>(ref::channel_of(static_cast<int64_t>(i), c.x.ref.shape, lay));
            xhat[i] = p.sd[k] > 0 ? (x[i] - p.mean[k]) / p.sd[k] : 0.0;
        }
    } else if (shaped) {
        std::vector<double> z(x.size());
        for (double& v : z) v = rng.normal() * 1.5;
        fill_buffer(c.x, z);
        xhat = z;
    }
    // dz = m_c + beta_c * xhat + N(0, 1), as tests/case_runner.cpp's make_dz.
    if (shape_ok(c.dz, lay) && c.dz.ref.shape == c.x.ref.shape && shaped) {
        std::vector<double> m(static_cast<size_t>(C)), beta(static_cast<size_t>(C));
        for (int64_t k = 0; k < C; k++) {
            m[static_cast<size_t>(k)] = rng.signed_uniform(0.5, 1.5);
            beta[static_cast<size_t>(k)] = rng.signed_uniform(0.5, 1.5);
        }
        std::vector<double> dz(x.size());
        for (size_t i = 0; i < dz.size(); i++) {
            const size_t k = static_cast<size_t>(ref::channel_of(static_cast<int64_t>(i), c.x.ref.shape, lay));
            dz[i] = m[k] + beta[k] * xhat[i] + rng.normal();
        }
        fill_buffer(c.dz, dz);
    }
}

// ---------------------------------------------------------------------------------------------
// Numerics: the outputs against the float64 reference, in the well-scaled domain only.

// |v| is 0 or within [lo, hi] for the dtype (far from overflow and underflow), and finite. 16-bit
// tensors have the f32 range: their arithmetic is f32, and their own range is the business of
// range_check() and storage_tolerance() below.
bool in_range(double v, DType t) {
    const double lo = t == DType::f64 ? 1e-290 : 1e-30, hi = t == DType::f64 ? 1e290 : 1e30;
    const double a = std::fabs(v);
    return std::isfinite(v) && (a == 0 || (a >= lo && a <= hi));
}
bool in_range(const std::vector<double>& v, DType t) {
    for (double x : v) {
        if (!in_range(x, t)) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// 16-bit tensor outputs: what storing a result in 16 bits adds to the error model.

// What storing a tensor output in 16 bits adds to the floored norm-wise error, relative to what
// that measure divides by (max(||want||, floor * ||scale||), `skip`ped elements left out): the
// unit roundoff u of each element (error_measures.h's tolerance(dt) less channel_tolerance(dt),
// the arithmetic's budget: 2^-11 f16, 2^-8 bf16), u * ||want||; and, for elements below twice the
// smallest normal number (f16's start at 6.1e-5), whose rounding is absolute, half the smallest
// spacing each. 0 for f32 and f64, stored in their arithmetic type. (The arithmetic's error is
// held to the f32 budget of the whole measure, floors included, as for f32 tensors: the floors
// describe how f32 roundings grow, and a 16-bit input is exact in f32.)
double storage_tolerance(DType dt, const std::vector<double>& want, const std::vector<double>& scale, double floor,
                         const std::vector<char>* skip = nullptr) {
    if (!sixteen_bits(dt) || want.size() != scale.size()) return 0;
    const iabn_test::HalfFormat f = half_format(dt);
    const double u = iabn_test::tolerance(dt) - iabn_test::channel_tolerance(dt);
    const double tiny = std::ldexp(1.0, f.emin() + 1), half_step = std::ldexp(1.0, f.emin() - f.mantissa_bits - 1);
    long double norm = 0, sc = 0, lost = 0;
    for (size_t i = 0; i < want.size(); i++) {
        if (skip && (*skip)[i]) continue;
        norm += static_cast<long double>(want[i]) * want[i];
        sc += static_cast<long double>(scale[i]) * scale[i];
        if (std::fabs(want[i]) < tiny) lost += static_cast<long double>(half_step) * half_step;
    }
    const double n = std::sqrt(static_cast<double>(norm)), error = u * n + std::sqrt(static_cast<double>(lost));
    const double d = std::max(n, floor * std::sqrt(static_cast<double>(sc)));
    return d == 0 ? error : error / d;  // (d == 0: the measure is absolute)
}

// Elements of a 16-bit output whose exact value leaves the dtype's range (f16: 65504): the library
// computes them in f32 and must store inf where the value overflows, never NaN. Near the rounding
// boundary to inf either outcome is right, so every element beyond half the largest finite value
// is taken out of the norm-wise comparison (`outside`) and judged alone: where the value is
// computed without cancellation (its operands' magnitude `scale` at most twice its own, so the f32
// result is within a few roundings of it), it must have the value's sign, and be inf from twice
// the largest finite value on.
struct RangeCheck {
    std::vector<char> outside;
    std::string problem;  // the first element that breaks these rules, or ""
};

RangeCheck range_check(const std::vector<double>& got, const std::vector<double>& want,
                       const std::vector<double>& scale, DType dt) {
    RangeCheck rc;
    rc.outside.assign(want.size(), 0);
    if (!sixteen_bits(dt) || got.size() != want.size() || scale.size() != want.size()) return rc;
    const double largest = half_format(dt).largest();
    for (size_t i = 0; i < want.size(); i++) {
        const double w = std::fabs(want[i]), g = got[i];
        if (w <= largest / 2) continue;
        rc.outside[i] = 1;
        const bool accurate = scale[i] <= 2 * w, same_sign = std::signbit(g) == std::signbit(want[i]);
        const char* why = nullptr;
        if (accurate && w >= 2 * largest && !std::isinf(g)) why = "finite where the value overflows";
        if (accurate && !same_sign) why = "the wrong sign";
        if (std::isnan(g)) why = "NaN from finite input";
        if (why && rc.problem.empty()) {
            rc.problem = "element " + std::to_string(i) + ": exact " + str(want[i]) + ", stored " + str(g) + " (" +
                         why + ")";
        }
    }
    return rc;
}

// The elements of v that are not `outside`.
template <typename T>
std::vector<T> inside(const std::vector<T>& v, const std::vector<char>& outside) {
    std::vector<T> out;
    for (size_t i = 0; i < v.size(); i++) {
        if (!outside[i]) out.push_back(v[i]);
    }
    return out;
}

std::string dump(const char* name, const std::vector<double>& v) {
    std::ostringstream out;
    out.precision(17);
    out << "  " << name << ":";
    for (size_t i = 0; i < v.size() && i < 24; i++) out << " " << v[i];
    out << (v.size() > 24 ? " ...\n" : "\n");
    return out.str();
}

double act_slope(double y, const iabn::Options& o) {  // |act'(y)|
    if (o.activation == Activation::identity || y >= 0) return 1;
    return o.activation == Activation::leaky_relu ? o.activation_param : o.activation_param * std::exp(y);
}

struct Inputs {  // a call's per-channel inputs as doubles (empty: absent)
    std::vector<double> w, b, rm, rv, si;
};

// Forward numerics. `x0`: x before; `after`: reads an output after the call.
void check_forward_numerics(const Call& c, const std::vector<double>& x0, const Inputs& in,
                            const std::function<std::vector<double>(int)>& after, const std::vector<double>& z) {
    const iabn::Options& o = c.o;
    const DType dt = c.x.ref.dtype, cd = channel_dtype(dt);
    const auto& shape = c.x.ref.shape;
    const int64_t C = channels_of(shape, o.layout), n = numel(shape), M = n / C;
    const bool batch = c.batch();
    if (!in_range(x0, dt) || !in_range(in.w, cd) || !in_range(in.b, cd) || !in_range(in.rm, cd) || !in_range(in.rv, cd)) {
        g_unchecked++;
        return;
    }
    const ref::ForwardResult r = ref::forward(x0, shape, in.w, in.b, in.rm, in.rv, o);
    // Conditioning: |mean| / std of a channel (batch), |running_mean| / rms(x - running_mean)
    // (global); constant channels normalize exactly and count as 1.
    std::vector<double> mu(static_cast<size_t>(C), 0.0), sq(static_cast<size_t>(C), 0.0),
        absx(static_cast<size_t>(C), 0.0);
    std::vector<int64_t> chan(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) chan[static_cast<size_t>(i)] = ref::channel_of(i, shape, o.layout);
    for (int64_t i = 0; i < n; i++) {
        mu[static_cast<size_t>(chan[static_cast<size_t>(i)])] += x0[static_cast<size_t>(i)] / static_cast<double>(M);
        absx[static_cast<size_t>(chan[static_cast<size_t>(i)])] += std::fabs(x0[static_cast<size_t>(i)]) / static_cast<double>(M);
    }
    if (!batch) mu = in.rm;
    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(chan[static_cast<size_t>(i)]);
        const double d = x0[static_cast<size_t>(i)] - mu[k];
        sq[k] += d * d / static_cast<double>(M);
    }
    std::vector<double> lo(static_cast<size_t>(C), kInf), hi(static_cast<size_t>(C), -kInf);
    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(chan[static_cast<size_t>(i)]);
        lo[k] = std::min(lo[k], x0[static_cast<size_t>(i)]);
        hi[k] = std::max(hi[k], x0[static_cast<size_t>(i)]);
    }
    double cond = 1;
    for (int64_t k = 0; k < C; k++) {
        const size_t j = static_cast<size_t>(k);
        if (lo[j] == hi[j] && batch) continue;  // constant
        const double spread = std::sqrt(sq[j]);
        cond = std::max(cond, spread > 0 ? std::fabs(mu[j]) / spread : kInf);
    }
    // Ranges of the intermediates: g, invstd, g * invstd, y.
    std::vector<double> g(static_cast<size_t>(C)), gi(static_cast<size_t>(C));
    for (int64_t k = 0; k < C; k++) {
        g[static_cast<size_t>(k)] = ref::effective_scale(in.w, k, o);
        gi[static_cast<size_t>(k)] = g[static_cast<size_t>(k)] * r.invstd[static_cast<size_t>(k)];
    }
    const double eps_dt = dt == DType::f64 ? DBL_EPSILON : FLT_EPSILON;  // of the arithmetic (f32 for 16 bits)
    if (cond > 1e5 || !in_range(r.y, dt) || !in_range(r.z, dt) || !in_range(g, cd) || !in_range(gi, cd) ||
        !in_range(r.invstd, cd) || !in_range(r.running_mean, cd) || !in_range(r.running_var, cd)) {
        g_unchecked++;
        return;
    }
    g_compared++;
    g_compared16 += sixteen_bits(dt);
    // The arithmetic's budget (f32 for 16-bit tensors), widened by the conditioning; tensor
    // outputs add the rounding of their storage.
    const double tol = iabn_test::channel_tolerance(dt);
    const double tol_spread = std::max(tol, 0.5 * eps_dt * cond);
    // Floors: the magnitudes of the operands of each result.
    std::vector<double> z_scale(static_cast<size_t>(n)), mean_scale(absx), rm_scale(static_cast<size_t>(C)),
        rv_scale(static_cast<size_t>(C));
    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(chan[static_cast<size_t>(i)]);
        const double bias = in.b.empty() ? 0.0 : in.b[k];
        z_scale[static_cast<size_t>(i)] = act_slope(r.y[static_cast<size_t>(i)], o) *
                                          (std::fabs(gi[k] * (x0[static_cast<size_t>(i)] - r.mean[k])) + std::fabs(bias));
    }
    for (int64_t k = 0; k < C; k++) {
        const size_t j = static_cast<size_t>(k);
        rm_scale[j] = std::fabs(o.momentum * in.rm[j]) + std::fabs((1 - o.momentum) * absx[j]);
        const double var = sq[j] * (o.unbiased_running_var && M > 1 ? double(M) / double(M - 1) : 1.0);
        rv_scale[j] = std::fabs(o.momentum * in.rv[j]) + std::fabs((1 - o.momentum) * var);
    }
    // 16-bit z: elements beyond the range judged alone, the others compared.
    const RangeCheck range = range_check(z, r.z, z_scale, dt);
    if (!range.problem.empty()) finding("numerics:forward:z-overflow", describe(c) + ": z " + range.problem);
    ref::ForwardResult want = r;
    want.z = inside(r.z, range.outside);
    z_scale = inside(z_scale, range.outside);
    iabn_test::ForwardFloors floors;
    const double tol_z = tol_spread + storage_tolerance(dt, want.z, z_scale, floors.floor);
    iabn_test::ForwardOutputs got;
    got.z = inside(z, range.outside);
    if (batch) {
        got.saved_mean = after(SM);
        got.saved_invstd = after(SI);
        got.running_mean = after(RM);
        got.running_var = after(RV);
    }
    floors.z_scale = &z_scale;
    floors.mean_scale = &mean_scale;
    floors.running_mean_scale = &rm_scale;
    floors.running_var_scale = &rv_scale;
    const auto bad = iabn_test::compare_forward(got, want, batch, {tol_z, tol, tol_spread}, floors);
    if (!bad.empty()) {
        std::string values;
        if (setup().verbose) {
            values = dump("x", x0) + dump("running_mean before", in.rm) + dump("running_var before", in.rv) +
                     dump("z", got.z) + dump("z ref", want.z) + dump("saved_mean", got.saved_mean) +
                     dump("saved_mean ref", r.saved_mean) + dump("saved_invstd", got.saved_invstd) +
                     dump("saved_invstd ref", r.saved_invstd) + dump("running_mean", got.running_mean) +
                     dump("running_mean ref", r.running_mean) + dump("running_var", got.running_var) +
                     dump("running_var ref", r.running_var);
        }
        finding("numerics:forward:" + bad[0].what.substr(0, bad[0].what.find(' ')), describe(c) + " (condition " + str(cond) + ")\n" + iabn_test::describe(bad) + values);
    }
}

// With batch statistics the reference leaves the dx of an ELU element saturated in the stored z
// undefined (its pre-activation is lost), and the comparison leaves it out, but the library's dx
// must not be NaN: it gives such an element the y of the nearest storable z above -a, ln(step),
// step the stored dtype's spacing below 1 (2^-11 f16, 2^-8 bf16: generators/activation.h), so its
// dx is g invstd (-mean(dy) - xhat mean(dy xhat)) with xhat = (ln(step) - b) / g. With a tiny g
// that leaves f16's range, and inf is then right. For 16-bit tensors this puts that value into
// `judged` (the elements range_check() judges, r.dx elsewhere) and its operands' magnitude into
// `scale`: beyond the range it is judged alone, within it it must be finite (compare_backward).
void judge_saturated(const ref::BackwardResult& r, DType dt, const iabn::Options& o, const Inputs& in,
                     const std::vector<double>& gi, const std::vector<int64_t>& chan, int64_t M,
                     std::vector<double>& judged, std::vector<double>& scale) {
    if (!sixteen_bits(dt) || !ref::uses_batch_stats(o)) return;
    const double y = std::log(half_format(dt).unit_roundoff());
    for (size_t e = 0; e < judged.size(); e++) {
        if (!r.saturated[e]) continue;
        const size_t j = static_cast<size_t>(chan[e]);
        const double sign = (o.abs_weight && !in.w.empty() && in.w[j] < 0) ? -1.0 : 1.0;  // of weight_grad
        const double mdy = r.bias_grad[j] / double(M), mdx = sign * r.weight_grad[j] / double(M);
        const double xhat = (y - (in.b.empty() ? 0.0 : in.b[j])) / ref::effective_scale(in.w, chan[e], o);
        judged[e] = gi[j] * (-mdy - xhat * mdx);
        scale[e] = std::fabs(gi[j]) * (std::fabs(mdy) + std::fabs(xhat * mdx));
    }
}

void check_backward_numerics(const Call& c, const std::vector<double>& z, const std::vector<double>& dz0,
                             const Inputs& in, const std::function<std::vector<double>(int)>& after,
                             const std::vector<double>& dx) {
    const iabn::Options& o = c.o;
    const DType dt = c.x.ref.dtype, cd = channel_dtype(dt);
    const auto& shape = c.x.ref.shape;
    const int64_t C = channels_of(shape, o.layout), n = numel(shape), M = n / C;
    const bool batch = c.batch();
    if (!in_range(z, dt) || !in_range(dz0, dt) || !in_range(in.w, cd) || !in_range(in.b, cd) || !in_range(in.si, cd) ||
        !in_range(in.rv, cd)) {
        g_unchecked++;
        return;
    }
    const ref::BackwardResult r = ref::backward(z, dz0, shape, in.w, in.b, in.si, in.rv, o);
    // The error model: per element, the magnitudes the computed y, dy and xhat are accurate to.
    const double a = o.activation_param;
    std::vector<double> dy_mag(static_cast<size_t>(n)), xhat(static_cast<size_t>(n)), xhat_mag(static_cast<size_t>(n)),
        y(static_cast<size_t>(n)), dy(static_cast<size_t>(n));
    std::vector<double> bg_scale(static_cast<size_t>(C), 0.0), wg_scale(static_cast<size_t>(C), 0.0), gi(static_cast<size_t>(C));
    std::vector<int64_t> chan(static_cast<size_t>(n));
    for (int64_t k = 0; k < C; k++) {
        const size_t j = static_cast<size_t>(k);
        const double invstd = batch ? in.si[j] : 1.0 / std::sqrt(in.rv[j] + o.epsilon);
        gi[j] = ref::effective_scale(in.w, k, o) * invstd;
    }
    for (int64_t i = 0; i < n; i++) {
        const size_t e = static_cast<size_t>(i);
        const int64_t k = ref::channel_of(i, shape, o.layout);
        chan[e] = k;
        const double zi = z[e], dzi = dz0[e];
        double yi = zi, dyi = dzi, ymag = std::fabs(zi), dymag = std::fabs(dzi);
        if (o.activation != Activation::identity && !(zi >= 0)) {
            if (o.activation == Activation::leaky_relu) {
                yi = zi / a;
                dyi = a * dzi;
                ymag = std::fabs(yi);
                dymag = std::fabs(dyi);
            } else if (!r.saturated[e]) {
                const double u = zi / a;
                yi = std::log1p(u);
                dyi = dzi * (zi + a);
                ymag = std::fabs(yi) + std::fabs(u) / (1 + u);
                dymag = std::fabs(dzi) * (std::fabs(zi) + a);
            } else {
                yi = dyi = ymag = dymag = 0;
            }
        }
        const double g = ref::effective_scale(in.w, k, o), b = in.b.empty() ? 0.0 : in.b[static_cast<size_t>(k)];
        y[e] = yi;
        dy[e] = dyi;
        xhat[e] = r.saturated[e] ? 0 : (yi - b) / g;
        xhat_mag[e] = r.saturated[e] ? 0 : (ymag + std::fabs(b)) / std::fabs(g);
        dy_mag[e] = dymag;
        bg_scale[static_cast<size_t>(k)] += dymag;
        wg_scale[static_cast<size_t>(k)] += dymag * std::fabs(xhat[e]) + std::fabs(dyi) * xhat_mag[e];
    }
    std::vector<double> dx_scale(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        const size_t e = static_cast<size_t>(i), j = static_cast<size_t>(chan[e]);
        if (batch) {
            const double mdy = r.bias_grad[j] / double(M), mdx = r.weight_grad[j] / double(M);
            dx_scale[e] = std::fabs(gi[j]) * (dy_mag[e] + std::fabs(mdy) + (xhat_mag[e] + std::fabs(xhat[e])) * std::fabs(mdx) +
                                              bg_scale[j] / double(M) + std::fabs(xhat[e]) * wg_scale[j] / double(M));
        } else {
            dx_scale[e] = std::fabs(gi[j]) * dy_mag[e];
        }
    }
    if (!in_range(y, dt) || !in_range(dy, dt) || !in_range(xhat, dt) || !in_range(gi, cd) || !in_range(r.dx, dt) ||
        !in_range(r.weight_grad, cd) || !in_range(r.bias_grad, cd) || !in_range(dx_scale, dt) ||
        !in_range(wg_scale, cd)) {
        g_unchecked++;
        return;
    }
    g_compared++;
    g_compared16 += sixteen_bits(dt);
    for (size_t j = 0; j < wg_scale.size(); j++) wg_scale[j] = std::max(wg_scale[j], r.weight_grad_scale[j]);
    // 16-bit dx: elements beyond the range judged alone, the others compared (ELU-saturated ones
    // left out with batch statistics, as in tests/case_runner.cpp: their pre-activation is lost).
    std::vector<double> judged = r.dx, judged_scale = dx_scale;
    judge_saturated(r, dt, o, in, gi, chan, M, judged, judged_scale);
    const RangeCheck range = range_check(dx, judged, judged_scale, dt);
    if (!range.problem.empty()) finding("numerics:backward:dx-overflow", describe(c) + ": dx " + range.problem);
    ref::BackwardResult want = r;
    want.dx = inside(r.dx, range.outside);
    want.saturated = inside(r.saturated, range.outside);
    dx_scale = inside(dx_scale, range.outside);
    iabn_test::BackwardOutputs got;
    got.dx = inside(dx, range.outside);
    got.grads = c.ch[WG].given() || c.ch[BG].given();
    got.weight_grad = c.ch[WG].given() ? after(WG) : r.weight_grad;
    got.bias_grad = c.ch[BG].given() ? after(BG) : r.bias_grad;
    iabn_test::BackwardFloors floors;
    floors.dx_scale = &dx_scale;
    floors.weight_grad_scale = &wg_scale;
    floors.bias_grad_scale = &bg_scale;
    floors.skip = batch ? &want.saturated : nullptr;
    const double tol = iabn_test::channel_tolerance(dt);
    const double tol_dx = tol + storage_tolerance(dt, want.dx, dx_scale, floors.floor, floors.skip);
    const auto bad = iabn_test::compare_backward(got, want, {tol_dx, tol}, floors);
    if (!bad.empty()) {
        std::string values;
        if (setup().verbose) {
            values = dump("z", z) + dump("dz", dz0) + dump("weight", in.w) + dump("bias", in.b) +
                     dump("saved_invstd", in.si) + dump("running_var", in.rv) + dump("dx", got.dx) +
                     dump("dx ref", want.dx) + dump("weight_grad", got.weight_grad) + dump("weight_grad ref", r.weight_grad) +
                     dump("bias_grad", got.bias_grad) + dump("bias_grad ref", r.bias_grad);
        }
        finding("numerics:backward:" + bad[0].what.substr(0, bad[0].what.find(' ')), describe(c) + "\n" + iabn_test::describe(bad) + values);
    }
}

// ---------------------------------------------------------------------------------------------
// Running a call and judging it.

// Byte ranges of the arena the call may write.
std::vector<std::pair<size_t, size_t>> writable(const Call& c) {
    std::vector<std::pair<size_t, size_t>> out;
    auto add = [&](const Buf& b) {
        if (b.where == Where::arena && b.bytes) out.push_back({b.offset, std::min<size_t>(kArena, b.offset + *b.bytes)});
    };
    if (!c.backward) add(c.x);
    if (c.backward) add(c.dz);
    for (int i = 0; i < kChannelBuffers; i++) {
        if (c.written(i)) add(c.ch[i]);
    }
    return out;
}

// Runs `call` and judges it. `heap_before`/`heap_after`: the InPlaceABN state (per-channel
// buffers on the heap) before, and a reader of it after; empty for functional calls.
void run(const Call& c, const std::function<void()>& call, const std::vector<unsigned char>* heap_before,
         const std::function<std::vector<unsigned char>(int)>& heap_now) {
    Setup& s = setup();
    g_calls++;
    std::vector<unsigned char> before(s.arena, s.arena + kArena);
    const Verdict v = model(c, before.data(), heap_before);
    {
        // A buffer at the guard is only for calls the rules refuse (or buffers they do not use).
        const Verdict strict = model(c, before.data(), heap_before, false);
        for (int i = 0; i < kChannelBuffers; i++) {
            if (c.ch[i].where == Where::guard && !strict.must_refuse() && c.used(i)) {
                harness_bug("guard buffer in " + describe(c));
            }
        }
        if ((c.x.where == Where::guard || c.dz.where == Where::guard) && !strict.must_refuse()) {
            harness_bug("guard tensor in " + describe(c));
        }
        for (const std::string& r : strict.refuse) {
            if (s.skipped.count(r.substr(0, r.find(':')))) return;  // IABN_FUZZ_SKIP
        }
    }
    if (s.verbose) {
        std::fprintf(stderr, "iabn_fuzz: %s -> %s\n", describe(c).c_str(),
                     v.must_refuse() ? ("refuse (" + v.refuse[0] + ")").c_str()
                     : v.must_accept() ? "accept"
                                       : ("open (" + v.open[0] + ")").c_str());
    }
    iabn::set_num_threads(c.threads);
    bool threw = false;
    std::string message;
    try {
        call();
    } catch (const iabn::Error& e) {
        threw = true;
        message = e.what();
    } catch (const std::exception& e) {
        finding("wrong-exception", describe(c) + ": threw a std::exception that is not iabn::Error: " + e.what());
        return;
    } catch (...) {
        finding("wrong-exception", describe(c) + ": threw something that is not a std::exception");
        return;
    }
    const bool arena_same = std::memcmp(before.data(), s.arena, kArena) == 0;
    bool heap_same = true;
    if (heap_before) {
        for (int i = 0; i < kChannelBuffers; i++) heap_same = heap_same && heap_now(i) == heap_before[i];
    }
    if (threw) {
        g_refused++;
        if (!arena_same || !heap_same) {
            finding("error-wrote-buffers", describe(c) + ": threw \"" + message + "\" after writing " +
                                               (arena_same ? "the InPlaceABN state" : "the arena"));
        }
        if (v.must_accept()) finding("rejected-valid", describe(c) + ": threw \"" + message + "\"");
        return;
    }
    // Accepted: nothing outside the outputs changed.
    const auto ranges = writable(c);
    for (size_t i = 0; i < kArena; i++) {
        if (before[i] == s.arena[i]) continue;
        bool ok = false;
        for (const auto& r : ranges) ok = ok || (i >= r.first && i < r.second);
        if (!ok) {
            finding("wrote-outside-outputs", describe(c) + ": arena byte " + std::to_string(i) + " changed");
            return;
        }
    }
    if (v.must_refuse()) {
        const std::string& first = v.refuse[0];
        finding("accepted-invalid:" + first.substr(0, first.find(':')), describe(c) + ": accepted, but " + first);
        return;
    }
    if (v.ignored) {  // an ignored rule: the call may be one the reference does not describe
        g_unchecked++;
        return;
    }
    // Numerics, from the bytes before the call.
    const Layout lay = c.o.layout;
    const int64_t C = channels_of(c.x.ref.shape, lay);
    auto input = [&](int i) {
        const Buf& b = c.ch[i];
        if (!b.given() || !c.used(i)) return std::vector<double>();
        if (!readable(b) || b.ref.shape != std::vector<int64_t>{C}) harness_bug("unreadable input in " + describe(c));
        return values(b, before.data(), heap_before ? heap_before[i].data() : nullptr);
    };
    auto after = [&](int i) {
        const Buf& b = c.ch[i];
        if (b.where == Where::heap) {
            std::vector<unsigned char> bytes = heap_now(i);
            return values(b, nullptr, bytes.data());
        }
        return values(b, s.arena);
    };
    Inputs in;
    in.w = input(W);
    in.b = input(B);
    if (!c.backward) {
        in.rm = input(RM);
        in.rv = input(RV);
        check_forward_numerics(c, values(c.x, before.data()), in, after, values(c.x, s.arena));
    } else {
        if (c.batch()) in.si = input(SI);
        else in.rv = input(RV);
        check_backward_numerics(c, values(c.x, before.data()), values(c.dz, before.data()), in, after,
                                values(c.dz, s.arena));
    }
}

void run_functional(const Call& c) {
    run(
        c,
        [&] {
            if (c.backward) {
                iabn::backward(c.x.ref, c.dz.ref, c.state(), c.grads(), c.o);
            } else {
                iabn::forward(c.x.ref, c.state(), c.o);
            }
        },
        nullptr, nullptr);
}

// ---------------------------------------------------------------------------------------------
// InPlaceABN: construct, copy, move, forward, backward, destroy.

struct Slot {
    std::optional<iabn::InPlaceABN> layer;
    bool moved_from = false;
};

// The layer's per-channel buffers as Bufs (on the heap) and their bytes.
void layer_buffers(const iabn::InPlaceABN& l, Buf (&ch)[kChannelBuffers]) {
    const iabn::ChannelState& s = l.state();
    const iabn::TensorRef refs[kChannelBuffers] = {s.weight,     s.bias,         s.running_mean,       s.running_var,
                                                   s.saved_mean, s.saved_invstd, l.grads().weight_grad, l.grads().bias_grad};
    for (int i = 0; i < kChannelBuffers; i++) {
        ch[i].ref = refs[i];
        ch[i].where = refs[i].data ? Where::heap : Where::null;
        ch[i].bytes = byte_size(refs[i].shape, refs[i].dtype);
    }
}

std::vector<unsigned char> heap_bytes(const Buf& b) {
    if (!b.given() || !b.bytes) return {};
    const auto* p = static_cast<const unsigned char*>(b.ref.data);
    return std::vector<unsigned char>(p, p + *b.bytes);
}

// Every per-channel value of a live, not moved-from layer, through its accessors, as bytes (NaN
// compares equal to itself).
std::vector<unsigned char> layer_values(const iabn::InPlaceABN& l) {
    std::vector<unsigned char> out;
    for (const std::vector<double>& v : {l.weight(), l.bias(), l.running_mean(), l.running_var(), l.saved_mean(),
                                         l.saved_invstd(), l.weight_grad(), l.bias_grad()}) {
        const auto* p = reinterpret_cast<const unsigned char*>(v.data());
        out.insert(out.end(), p, p + v.size() * sizeof(double));
    }
    return out;
}

void inplace_abn_mode(Choices& in, Rng& rng, int threads) {
    static const int64_t channels_menu[] = {3, 1, 2, 4, 5, 8, 16, 7};
    static const int64_t wild_channels[] = {0, -1, -(int64_t(1) << 40), INT64_MIN};
    const int64_t channels = in.menu(channels_menu, wild_channels, 248);
    const DType dt = call_dtype(in);
    iabn::Options o = options_choice(in);
    if (in.pick(2) == 0) {  // mostly sane options: the interesting part is the object's life
        if (static_cast<int>(o.activation) < 0 || static_cast<int>(o.activation) > 2) o.activation = Activation::identity;
        if (!(o.activation_param > 0) || !std::isfinite(o.activation_param)) o.activation_param = 0.3;
        o.epsilon = 1e-5;
        o.momentum = 0.9;
        if (!valid_layout(o.layout)) o.layout = Layout::nchw;
    }
    Slot slots[2];
    try {
        slots[0].layer.emplace(channels, o, dt);
        if (channels < 1) finding("inplace_abn:accepted-channels", "InPlaceABN(" + std::to_string(channels) + ") constructed");
    } catch (const iabn::Error& e) {
        if (channels >= 1) finding("inplace_abn:rejected-channels", std::string("InPlaceABN: ") + e.what());
        return;
    } catch (const std::exception& e) {
        finding("wrong-exception", std::string("InPlaceABN(") + std::to_string(channels) + "): " + e.what());
        return;
    }
    const int ops = 1 + in.pick(6);
    for (int step = 0; step < ops; step++) {
        const size_t op = in.pick(10);
        const size_t si = in.pick(2);
        Slot& s = slots[si];
        Slot& other = slots[1 - si];
        if (!s.layer) continue;
        if (op == 2 || op == 3 || op == 4 || op == 5) {  // copy / move into the other slot
            if (s.moved_from && op != 4 && op != 5) continue;  // copies of moved-from objects: unspecified
            if (op <= 3 && setup().skipped.count("copy")) continue;  // IABN_FUZZ_SKIP=copy
            if (op == 2) {
                other.layer.reset();
                other.layer.emplace(*s.layer);
            } else if (op == 3) {
                if (!other.layer) other.layer.emplace(1);
                *other.layer = *s.layer;
            } else if (op == 4) {
                other.layer.reset();
                other.layer.emplace(std::move(*s.layer));
            } else {
                if (!other.layer) other.layer.emplace(1);
                *other.layer = std::move(*s.layer);
            }
            other.moved_from = s.moved_from;
            if (op >= 4) s.moved_from = true;
            if (op <= 3) {  // a copy is deep: none of its buffers is the original's
                Buf mine[kChannelBuffers], theirs[kChannelBuffers];
                layer_buffers(*s.layer, mine);
                layer_buffers(*other.layer, theirs);
                for (int i = 0; i < kChannelBuffers; i++) {
                    if (mine[i].given() && mine[i].ref.data == theirs[i].ref.data) {
                        finding("inplace_abn:shallow-copy", std::string("a copy of an InPlaceABN (") +
                                                                (op == 2 ? "copy constructor" : "copy assignment") +
                                                                ") shares the original's " + kChName[i] + " buffer");
                        return;  // (destroying either would leave the other dangling)
                    }
                }
            }
            continue;
        }
        if (op == 6) {  // destroy
            s.layer.reset();
            s.moved_from = false;
            continue;
        }
        if (op == 7) {  // set_weight / set_bias, sometimes with the wrong count
            if (s.moved_from) continue;
            const int64_t n = s.layer->channels() + (in.pick(8) == 0 ? 1 : 0);
            std::vector<double> v(static_cast<size_t>(n));
            for (double& x : v) x = rng.signed_uniform(0.5, 1.5);
            const auto before = layer_values(*s.layer);
            try {
                (in.flag() ? s.layer->set_bias(v) : s.layer->set_weight(v));
                if (n != s.layer->channels()) finding("inplace_abn:accepted-set", "set_weight/set_bias with a wrong count");
            } catch (const iabn::Error&) {
                if (n == s.layer->channels()) finding("inplace_abn:rejected-set", "set_weight/set_bias with the right count");
                if (layer_values(*s.layer) != before) finding("error-wrote-buffers", "set_weight/set_bias threw after writing");
            }
            continue;
        }
        // forward (0, 8) / backward (1, 9) on x / z, dz in the arena.
        Gen g{in, rng, 0, {}};
        Call c;
        c.backward = op == 1 || op == 9;
        c.o = s.layer->options();
        c.threads = threads;
        const int64_t C = s.layer->channels();
        // (A moved-from object's call gets an ordinary x: it must throw whatever x is.)
        c.x.ref.dtype = in.pick(8) == 0 && !s.moved_from ? call_dtype(in) : s.layer->dtype();
        std::vector<int64_t> shape = {2 + int64_t(in.pick(6)), C};
        if (in.flag()) shape.push_back(1 + int64_t(in.pick(9)));
        if (valid_layout(c.o.layout) && c.o.layout == Layout::nhwc) std::swap(shape[1], shape.back());
        if (in.pick(16) == 0 && !s.moved_from) shape = shape_choice(in);
        c.x.ref.shape = shape;
        const Layout lay = valid_layout(c.o.layout) ? c.o.layout : Layout::nchw;
        if (!tensor_refused_alone(c.x, lay)) clamp(c.x.ref.shape, c.x.ref.dtype, lay, kArena / 4);
        if (!place(g, c.x, in.pick(8) == 0 && !s.moved_from ? place_choice(in) : Place::fresh,
                   tensor_refused_alone(c.x, lay))) {
            continue;
        }
        if (c.backward) {
            c.dz.ref = c.x.ref;
            if (!place(g, c.dz, Place::fresh, tensor_refused_alone(c.x, lay))) continue;
        }
        // The moved-from object's buffers are not its own: only check that its calls throw.
        if (s.moved_from) {
            std::vector<unsigned char> arena(setup().arena, setup().arena + kArena);
            std::vector<unsigned char> other_state;
            if (other.layer && !other.moved_from) other_state = layer_values(*other.layer);
            try {
                c.backward ? s.layer->backward(c.x.ref, c.dz.ref) : s.layer->forward(c.x.ref);
                finding("inplace_abn:moved-from-call", std::string("a moved-from InPlaceABN's ") +
                                                           (c.backward ? "backward" : "forward") + " did not throw");
            } catch (const iabn::Error&) {
                if (std::memcmp(arena.data(), setup().arena, kArena) != 0) finding("error-wrote-buffers", "moved-from call");
            } catch (const std::exception& e) {
                finding("wrong-exception", std::string("moved-from call: ") + e.what());
            }
            if (other.layer && !other.moved_from && layer_values(*other.layer) != other_state) {
                finding("inplace_abn:moved-from-call", "a moved-from InPlaceABN's call changed the object it was moved into");
            }
            continue;
        }
        layer_buffers(*s.layer, c.ch);
        fill(in, rng, c, false);
        std::vector<unsigned char> heap_before[kChannelBuffers];
        for (int i = 0; i < kChannelBuffers; i++) heap_before[i] = heap_bytes(c.ch[i]);
        std::vector<unsigned char> other_state;
        if (other.layer && !other.moved_from) other_state = layer_values(*other.layer);
        iabn::InPlaceABN& l = *s.layer;
        run(
            c, [&] { c.backward ? l.backward(c.x.ref, c.dz.ref) : l.forward(c.x.ref); }, heap_before,
            [&](int i) { return heap_bytes(c.ch[i]); });
        if (other.layer && !other.moved_from && layer_values(*other.layer) != other_state) {
            finding("inplace_abn:shared-state", "a call on one InPlaceABN changed the state of another (a copy)");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    init();
    std::atexit(summary);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    g_input = data;
    g_input_size = size;
    Choices in(data, size);
    const int mode = in.pick(4);
    Rng rng(in.u64());
    static const int threads_menu[] = {2, 1, 3, 4};
    const int threads = threads_menu[in.pick(4)];
    if (mode == 3) {
        inplace_abn_mode(in, rng, threads);
        return 0;
    }
    Gen g{in, rng, 0, {}};
    Call c;
    c.threads = threads;
    if (mode == 2) {
        valid_call(g, c);
    } else if (!general_call(g, c)) {
        return 0;  // a buffer the rules accept but the arena cannot back: not a call to make
    }
    fill(in, rng, c, mode == 2);
    if (mode == 2) {
        const Verdict v = model(c, setup().arena, nullptr);
        if (!v.must_accept()) {
            harness_bug("valid-mode call is not valid: " + describe(c) + ": " +
                        (v.refuse.empty() ? v.open[0] : v.refuse[0]));
        }
    }
    run_functional(c);
    return 0;
}
