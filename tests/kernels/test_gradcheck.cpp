// Finite-difference check of the backward against the library's own forward (f64).
//
// L(x, w, b) = sum_i u_i * z_i with random u, z from iabn::forward. Central differences of L with
// respect to a sample of x elements and every weight and bias are compared with backward(dz = u).
// This checks the backward formulas against the forward independently of the reference.
#include "case_runner.h"

#include <algorithm>
#include <cmath>

namespace iabn_test {
namespace {

struct GradCase {
    iabn::Activation act;
    double param;
    Stats stats;
    iabn::Layout layout;
    bool abs_weight;
};

std::string grad_case_name(const ::testing::TestParamInfo<GradCase>& i) {
    const GradCase& g = i.param;
    return act_name(g.act, g.param) + (g.stats == Stats::batch ? "_batch" : "_global") +
           (g.layout == iabn::Layout::nchw ? "_nchw" : "_nhwc") + (g.abs_weight ? "_absweight" : "_plainweight");
}

class FiniteDifference : public ::testing::TestWithParam<GradCase> {
protected:
    // One library forward on fresh copies (forward overwrites x and updates the running stats,
    // so every evaluation starts from the same state). Returns L = sum u * z in long double.
    double loss(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b) {
        Buffer xb(iabn::DType::f64, shape_), wb(iabn::DType::f64, {C_}), bb(iabn::DType::f64, {C_}),
            rm(iabn::DType::f64, {C_}), rv(iabn::DType::f64, {C_}), sm(iabn::DType::f64, {C_}),
            si(iabn::DType::f64, {C_});
        xb.set(x);
        wb.set(w);
        bb.set(b);
        rm.set(running_mean_);
        rv.set(running_var_);
        iabn::forward(xb.ref(), {wb.ref(), bb.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()}, opts_);
        long double s = 0;
        const std::vector<double> z = xb.get();
        for (size_t i = 0; i < z.size(); i++) s += static_cast<long double>(u_[i]) * z[i];
        return static_cast<double>(s);
    }

    std::vector<int64_t> shape_;
    int64_t C_ = 0;
    iabn::Options opts_;
    std::vector<double> u_, running_mean_, running_var_;
};

TEST_P(FiniteDifference, BackwardMatchesCentralDifferences) {
    IABN_TRACE_SEED();
    const GradCase gc = GetParam();
    Rng rng;
    Case c;
    c.dtype = iabn::DType::f64;
    c.layout = gc.layout;
    c.shape = gc.layout == iabn::Layout::nchw ? std::vector<int64_t>{4, 3, 6} : std::vector<int64_t>{4, 6, 3};
    c.act = gc.act;
    c.param = gc.param;
    c.stats = gc.stats;
    c.abs_weight = gc.abs_weight;
    shape_ = c.shape;
    opts_ = c.options();
    const double h = 1e-6;
    // Every pre-activation at least `margin` from the kink at 0: a step of h moves any y by at
    // most ~h * |g| * invstd * (1 + |xhat|) << margin, so no difference crosses the kink.
    const double margin = 1e-2;

    Inputs in;
    bool ok = false;
    for (int attempt = 0; attempt < 200 && !ok; attempt++) {
        in = make_inputs(c, rng);
        const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, opts_);
        ok = std::all_of(f.y.begin(), f.y.end(), [&](double y) { return std::fabs(y) > margin; });
    }
    ASSERT_TRUE(ok) << "could not draw inputs away from the kink";
    C_ = in.channels;
    running_mean_ = in.running_mean;
    running_var_ = in.running_var;
    u_.resize(in.x.size());
    for (double& v : u_) v = rng.normal();

    // Analytic gradient: forward once (saved_invstd, z), then backward with dz = u.
    const int64_t C = C_;
    Buffer xb(iabn::DType::f64, shape_), dz(iabn::DType::f64, shape_), wb(iabn::DType::f64, {C}),
        bb(iabn::DType::f64, {C}), rm(iabn::DType::f64, {C}), rv(iabn::DType::f64, {C}), sm(iabn::DType::f64, {C}),
        si(iabn::DType::f64, {C}), wg(iabn::DType::f64, {C}), bg(iabn::DType::f64, {C});
    xb.set(in.x);
    wb.set(in.weight);
    bb.set(in.bias);
    rm.set(in.running_mean);
    rv.set(in.running_var);
    sm.poison();
    if (ref::uses_batch_stats(opts_)) si.poison();
    wg.poison();
    bg.poison();
    const iabn::ChannelState st{wb.ref(), bb.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()};
    ASSERT_NO_THROW(iabn::forward(xb.ref(), st, opts_));
    dz.set(u_);
    // The running statistics were updated by the training forward; the global-stats backward
    // must read the values the forward used.
    rv.set(in.running_var);
    ASSERT_NO_THROW(iabn::backward(xb.ref(), dz.ref(), st, {wg.ref(), bg.ref()}, opts_));
    const std::vector<double> dx = dz.get(), dw = wg.get(), db = bg.get();

    // Central differences: a sample of x elements (every channel represented), all w and b.
    std::vector<double> fd_x, an_x;
    const int64_t n = static_cast<int64_t>(in.x.size());
    for (int64_t i = 0; i < n; i += 5) {
        std::vector<double> xp = in.x, xm = in.x;
        xp[static_cast<size_t>(i)] += h;
        xm[static_cast<size_t>(i)] -= h;
        fd_x.push_back((loss(xp, in.weight, in.bias) - loss(xm, in.weight, in.bias)) / (2 * h));
        an_x.push_back(dx[static_cast<size_t>(i)]);
    }
    std::vector<double> fd_w, fd_b;
    for (int64_t k = 0; k < C; k++) {
        std::vector<double> wp = in.weight, wm = in.weight, bp = in.bias, bm = in.bias;
        wp[static_cast<size_t>(k)] += h;
        wm[static_cast<size_t>(k)] -= h;
        bp[static_cast<size_t>(k)] += h;
        bm[static_cast<size_t>(k)] -= h;
        fd_w.push_back((loss(in.x, wp, in.bias) - loss(in.x, wm, in.bias)) / (2 * h));
        fd_b.push_back((loss(in.x, in.weight, bp) - loss(in.x, in.weight, bm)) / (2 * h));
    }
    // Central differences in f64 with h = 1e-6: truncation O(h^2) ~ 1e-12, rounding
    // ~ eps * |L| / h ~ 1e-9 on gradients of order 1; 1e-6 norm-wise leaves a wide margin while
    // any formula error (a missing term, a wrong sign) is O(1).
    const double tol = 1e-6;
    EXPECT_LE(rel_err(an_x, fd_x), tol) << "dx vs central differences";
    EXPECT_LE(rel_err(dw, fd_w), tol) << "weight_grad vs central differences"
                                      << (gc.abs_weight ? " (abs_weight, negative weights)" : "");
    EXPECT_LE(rel_err(db, fd_b), tol) << "bias_grad vs central differences";
}

std::vector<GradCase> grad_cases() {
    std::vector<GradCase> out;
    const std::pair<iabn::Activation, double> acts[] = {{iabn::Activation::identity, 1.0},
                                                        {iabn::Activation::leaky_relu, 0.01},
                                                        {iabn::Activation::leaky_relu, 0.3},
                                                        {iabn::Activation::elu, 1.0},
                                                        {iabn::Activation::elu, 0.5}};
    int index = 0;
    for (const auto& a : acts) {
        for (Stats st : {Stats::batch, Stats::global_eval}) {
            for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
                // abs_weight on for half the cases, meeting both layouts and both stats modes.
                const bool abs = index % 4 == 1 || index % 4 == 2;
                index++;
                out.push_back({a.first, a.second, st, lay, abs});
            }
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, FiniteDifference, ::testing::ValuesIn(grad_cases()), grad_case_name);

}  // namespace
}  // namespace iabn_test
