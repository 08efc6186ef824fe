// Forward contract: z written over x, saved statistics, running statistics (momentum, biased and
// unbiased), global statistics leave everything but x untouched. Every activation x layout x
// rank x dtype x stats mode, against the float64 reference.
#include "case_runner.h"

namespace iabn_test {
namespace {

class ForwardMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(ForwardMatchesReference, InPlaceZSavedAndRunningStats) {
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(All, ForwardMatchesReference, ::testing::ValuesIn(standard_cases()), CaseName());

// Named cases for the weight/bias conventions (also cycled through the cross product above).
std::vector<Case> convention_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (Stats st : {Stats::batch, Stats::global_eval}) {
            Case c;
            c.dtype = dt;
            c.shape = {7, 5, 33};
            c.stats = st;
            c.act = iabn::Activation::leaky_relu;
            c.param = 0.3;
            Case none = c;  // g = 1, b = 0
            none.weight = none.bias = false;
            out.push_back(none);
            Case abs = c;  // g = |w| + eps with negative weights
            abs.abs_weight = true;
            out.push_back(abs);
            Case abs_none = c;  // abs_weight, no weight: g = 1 (docs/semantics.md, "Effective scale")
            abs_none.abs_weight = true;
            abs_none.weight = false;
            out.push_back(abs_none);
        }
    }
    return out;
}

class ForwardWeightConventions : public ::testing::TestWithParam<Case> {};

TEST_P(ForwardWeightConventions, MatchReference) {
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Conventions, ForwardWeightConventions, ::testing::ValuesIn(convention_cases()), CaseName());

// Momentum is a plain convex combination: check the two ends and the defaults explicitly.
class ForwardMomentum : public ::testing::TestWithParam<double> {};

TEST_P(ForwardMomentum, RunningStatsFollowMomentum) {
    IABN_TRACE_SEED();
    Rng rng;
    Case c;
    c.shape = {9, 4, 31};
    c.unbiased = true;
    const Inputs in = make_inputs(c, rng);
    iabn::Options o = c.options();
    o.momentum = GetParam();
    Buffer x(c.dtype, c.shape), w(iabn::DType::f32, {4}), b(iabn::DType::f32, {4}), rm(iabn::DType::f32, {4}),
        rv(iabn::DType::f32, {4}), sm(iabn::DType::f32, {4}), si(iabn::DType::f32, {4});
    x.set(in.x);
    w.set(in.weight);
    b.set(in.bias);
    rm.set(in.running_mean);
    rv.set(in.running_var);
    sm.poison();
    si.poison();
    const auto r = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    ASSERT_NO_THROW(iabn::forward(x.ref(), {w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()}, o));
    EXPECT_LE(rel_err(rm.get(), r.running_mean), tolerance<float>());
    EXPECT_LE(rel_err(rv.get(), r.running_var), tolerance<float>());
    if (o.momentum == 1.0) {  // running = 1 * running + 0 * batch: bit-identical
        EXPECT_EQ(rm.get(), in.running_mean);
        EXPECT_EQ(rv.get(), in.running_var);
    }
    EXPECT_LE(rel_err(x.get(), r.z), tolerance<float>());
}

INSTANTIATE_TEST_SUITE_P(Values, ForwardMomentum, ::testing::Values(0.0, 0.1, 0.9, 1.0),
                         [](const ::testing::TestParamInfo<double>& i) {
                             return "momentum_" + std::to_string(static_cast<int>(i.param * 10)) + "_tenths";
                         });

}  // namespace
}  // namespace iabn_test
