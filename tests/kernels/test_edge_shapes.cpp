// Edge shapes: one channel, two elements per channel, spatial size 1, extents that are not
// multiples of any vector width, many channels with few elements, and 2^22 elements per channel.
// Also the kink rule: z = +0.0 and z = -0.0 take the identity branch in the backward.
#include "case_runner.h"

#include <cmath>

namespace iabn_test {
namespace {

std::vector<Case> edge_cases() {
    const std::vector<std::pair<iabn::Layout, std::vector<int64_t>>> shapes = {
        {iabn::Layout::nchw, {2, 1}},          // C = 1, M = 2
        {iabn::Layout::nhwc, {2, 1}},          // C = 1, M = 2
        {iabn::Layout::nchw, {1, 3, 2}},       // M = 2
        {iabn::Layout::nhwc, {1, 2, 3}},       // M = 2
        {iabn::Layout::nchw, {5, 1, 7}},       // C = 1
        {iabn::Layout::nhwc, {5, 7, 1}},       // C = 1
        {iabn::Layout::nchw, {6, 4, 1, 1}},    // spatial size 1
        {iabn::Layout::nhwc, {6, 1, 1, 4}},    // spatial size 1
        {iabn::Layout::nchw, {3, 5, 7, 11}},   // odd extents
        {iabn::Layout::nhwc, {3, 5, 7, 11}},   // odd extents, C = 11
        {iabn::Layout::nchw, {5, 7, 13}},      // odd extents
        {iabn::Layout::nhwc, {5, 7, 13}},      // odd extents, C = 13
        {iabn::Layout::nchw, {2, 1024, 3}},    // C = 1024, M = 6
        {iabn::Layout::nhwc, {2, 3, 1024}},    // C = 1024, M = 6
        {iabn::Layout::nchw, {2, 3, 1, 1, 1}}, // rank 5, M = 2
        {iabn::Layout::nhwc, {2, 1, 1, 1, 3}}, // rank 5, M = 2
    };
    const std::pair<iabn::Activation, double> acts[] = {{iabn::Activation::identity, 1.0},
                                                        {iabn::Activation::leaky_relu, 0.3},
                                                        {iabn::Activation::elu, 0.5},
                                                        {iabn::Activation::elu, 1.0},
                                                        {iabn::Activation::leaky_relu, 0.01}};
    std::vector<Case> out;
    int index = 0;
    for (const auto& s : shapes) {
        for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
            for (Stats st : {Stats::batch, Stats::global_eval}) {
                Case c;
                c.layout = s.first;
                c.shape = s.second;
                c.dtype = dt;
                c.stats = st;
                c.act = acts[index % 5].first;
                c.param = acts[index % 5].second;
                c.unbiased = index % 3 == 0;  // M = 2: unbiased running var doubles the variance
                c.abs_weight = index % 4 == 1;
                index++;
                out.push_back(c);
            }
        }
    }
    return out;
}

class EdgeShapes : public ::testing::TestWithParam<Case> {};

TEST_P(EdgeShapes, ForwardMatchesReference) {
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

TEST_P(EdgeShapes, BackwardMatchesReference) {
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Shapes, EdgeShapes, ::testing::ValuesIn(edge_cases()), CaseName());

// 2^22 elements per channel (f32): the channel sums must stay accurate for millions of terms.
std::vector<Case> large_cases() {
    Case a;
    a.layout = iabn::Layout::nchw;
    a.shape = {4, 2, int64_t(1) << 20};
    a.act = iabn::Activation::elu;
    a.param = 1.0;
    a.unbiased = true;
    Case b;
    b.layout = iabn::Layout::nhwc;
    b.shape = {int64_t(1) << 22, 2};
    b.act = iabn::Activation::leaky_relu;
    b.param = 0.3;
    return {a, b};
}

class LargeChannel : public ::testing::TestWithParam<Case> {};

TEST_P(LargeChannel, ForwardMatchesReference) {
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

TEST_P(LargeChannel, BackwardMatchesReference) {
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(M4Mi, LargeChannel, ::testing::ValuesIn(large_cases()), CaseName());

// The kink rule in the inverse: z >= 0 (including -0.0) takes the identity branch, so
// dy = dz there; the other branch would give a * dz (leaky) or (z + a) * dz = a * dz (elu).
// Global statistics make dx elementwise: dx = g * invstd_running * dy.
class KinkRule : public ::testing::TestWithParam<Case> {};

TEST_P(KinkRule, SignedZerosTakeIdentityBranch) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    const int64_t C = in.channels;
    auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    for (size_t i = 0; i < f.z.size(); i += 3) f.z[i] = (i / 3) % 2 ? -0.0 : 0.0;
    Buffer z(c.dtype, c.shape), dz(c.dtype, c.shape), w(cd, {C}), b(cd, {C}), rm(cd, {C}), rv(cd, {C}),
        sm(cd, {C}), si(cd, {C}), wg(cd, {C}), bg(cd, {C});
    const auto zs = z.set(f.z);
    ASSERT_TRUE(std::signbit(zs[3]) && zs[3] == 0.0) << "test setup: -0.0 must survive the store";
    const auto dzs = dz.set(make_dz(c, in, rng));
    w.set(in.weight);
    b.set(in.bias);
    rm.set(in.running_mean);
    const auto rvs = rv.set(in.running_var);
    sm.poison();
    si.poison();
    wg.poison();
    bg.poison();
    const auto r = ref::backward(zs, dzs, c.shape, in.weight, in.bias, {}, rvs, o);
    ASSERT_NO_THROW(iabn::backward(z.ref(), dz.ref(), {w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()},
                                   {wg.ref(), bg.ref()}, o));
    const auto dx = dz.get();
    std::vector<double> got0, want0;
    for (size_t i = 0; i < dx.size(); i += 3) {
        got0.push_back(dx[i]);
        want0.push_back(r.dx[i]);
    }
    EXPECT_LE(rel_err(got0, want0), tolerance(c.dtype)) << "dx at z = +0.0 / -0.0";
    EXPECT_LE(rel_err(dx, r.dx), tolerance(c.dtype)) << "dx";
    EXPECT_LE(rel_err_floor(wg.get(), r.weight_grad, r.weight_grad_scale, 0.1), tolerance(c.dtype));
    EXPECT_LE(rel_err_floor(bg.get(), r.bias_grad, r.bias_grad_scale, 0.1), tolerance(c.dtype));
}

std::vector<Case> kink_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (auto act : {std::make_pair(iabn::Activation::leaky_relu, 0.3), std::make_pair(iabn::Activation::elu, 0.5)}) {
            Case c;
            c.dtype = dt;
            c.shape = {4, 3, 29};
            c.stats = Stats::global_eval;
            c.act = act.first;
            c.param = act.second;
            out.push_back(c);
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Zeros, KinkRule, ::testing::ValuesIn(kink_cases()), CaseName());

}  // namespace
}  // namespace iabn_test
