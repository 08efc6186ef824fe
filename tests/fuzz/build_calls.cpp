// iabn_fuzz_api: building a call from the choice bytes (harness.h): options, dtypes, shapes,
// devices and the placement of every buffer in the arena, for a general call (anything) or a
// valid one.
#include "harness.h"

#include <algorithm>
#include <iterator>

namespace iabn_fuzz {

namespace {

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

}  // namespace

namespace {

// A slot for `bytes` bytes: fresh (after the previous ones) or, if none is left, anywhere.
size_t fresh_offset(Gen& g, uint64_t bytes, size_t align) {
    size_t off = (g.next_free + align - 1) / align * align + g.in.pick(4) * align;
    if (off + bytes > kArena) off = bytes <= kArena ? (g.rng.below((kArena - bytes) / align + 1)) * align : 0;
    g.next_free = std::max(g.next_free, static_cast<size_t>(off + bytes));
    return off;
}

}  // namespace

Place place_choice(Choices& in) {
    static const Place table[16] = {Place::fresh, Place::fresh,      Place::fresh, Place::fresh,    Place::fresh,
                                    Place::fresh, Place::fresh,      Place::fresh, Place::fresh,    Place::end,
                                    Place::end,   Place::misaligned, Place::alias, Place::anywhere, Place::anywhere,
                                    Place::null};
    return table[in.pick(16)];
}

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

DType call_dtype(Choices& in) {
    static const DType wide[] = {DType::f32, DType::f64};
    static const DType narrow[] = {DType::f16, DType::bf16};
    static const DType wild[] = {DType::f16, DType::bf16, static_cast<DType>(4), static_cast<DType>(-1)};
    const uint8_t b = in.byte();
    if (b >= 240) return wild[(b - 240) % 4];
    return b >= 192 && b < 232 ? narrow[b % 2] : wide[b % 2];
}

namespace {

Device device_choice(Choices& in) {
    const uint8_t b = in.byte();
    if (b < 248) return Device::cpu;
    if (b < 252) return setup().cuda_allowed ? Device::cuda : Device::cpu;
    // Device::opencl (2) is refused in the fuzz build (tools/fuzz.sh builds no OpenCL kernels);
    // 3 and -1 are no device at all.
    if (b < 253) return Device::opencl;
    return static_cast<Device>(b < 254 ? 3 : -1);
}

}  // namespace

iabn::Options options_choice(Choices& in) {
    iabn::Options o;
    // Every activation of the enum; the wild ones just outside it: the first value past the last
    // activation (iabn::kActivationCount, not a number that a new activation would make valid),
    // -1 and 255.
    static const Activation wild_acts[] = {static_cast<Activation>(iabn::kActivationCount),
                                           static_cast<Activation>(-1), static_cast<Activation>(255)};
    o.activation = in.menu(iabn::kActivations, wild_acts, 250);
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

bool tensor_refused_alone(const Buf& b, Layout layout) {
    const auto& s = b.ref.shape;
    if (s.size() < 2 || s.size() > 5 || !computable(b.ref.dtype) || b.ref.device != Device::cpu) return true;
    for (int64_t d : s) {
        if (d <= 0) return true;
    }
    if (!byte_size(s, b.ref.dtype)) return true;
    return !view_fits(s, valid_layout(layout) ? layout : Layout::nchw);
}

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

namespace {

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

}  // namespace

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

void valid_call(Gen& g, Call& c) {
    Choices& in = g.in;
    c.backward = in.flag();
    iabn::Options& o = c.o;
    o.activation = iabn::kActivations[in.pick(std::size(iabn::kActivations))];
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

}  // namespace iabn_fuzz
