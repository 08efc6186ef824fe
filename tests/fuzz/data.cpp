// iabn_fuzz_api: the data of a call (harness.h): moderate background values in the arena, then
// every buffer by its role (per-channel distributions, the forward of x as backward's z, a
// correlated dz).
#include "harness.h"

#include "reference.h"

#include <algorithm>

namespace iabn_fuzz {

namespace {


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

}  // namespace

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
        if (!valid_activation(o.activation)) o.activation = Activation::identity;
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
    // dz = m_c + beta_c * xhat + N(0, 1), as tests/support/case_runner.cpp's make_dz.
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

}  // namespace iabn_fuzz
