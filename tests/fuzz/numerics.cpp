// iabn_fuzz_api: the numerics of an accepted call (harness.h): its outputs against the float64
// reference (tests/support/reference.h) with the test suite's measures (tests/support/compare.h), in the
// well-scaled domain only; 16-bit outputs beyond their range judged alone.
#include "harness.h"

#include "compare.h"
#include "reference.h"

#include <algorithm>
#include <sstream>

namespace iabn_fuzz {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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
    // left out with batch statistics, as in tests/support/case_runner.cpp: their pre-activation is lost).
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

}  // namespace iabn_fuzz
