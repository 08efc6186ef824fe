// Backward contract: dx written over dz, weight_grad, bias_grad, with batch and with global
// statistics; z and every per-channel input untouched; buffers the mode must not read are NaN.
#include "case_runner.h"

#include <cmath>

namespace iabn_test {
namespace {

class BackwardMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(BackwardMatchesReference, InPlaceDxAndParamGrads) {
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(All, BackwardMatchesReference, ::testing::ValuesIn(standard_cases()), CaseName());

// abs_weight: g = |w| + eps, so dL/dw = sign(w) * sum(dy * xhat). Half the channels have negative
// weights; the sign of each channel's weight_grad must follow the rule, not only the norm.
class BackwardAbsWeightSign : public ::testing::TestWithParam<Case> {};

TEST_P(BackwardAbsWeightSign, WeightGradFlipsWhereWeightNegative) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    Inputs in = make_inputs(c, rng);
    for (size_t k = 0; k < in.weight.size(); k++) in.weight[k] = (k % 2 ? 1.0 : -1.0) * std::fabs(in.weight[k]);
    const iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    const int64_t C = in.channels;
    const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    Buffer z(c.dtype, c.shape), dz(c.dtype, c.shape), w(cd, {C}), b(cd, {C}), rm(cd, {C}), rv(cd, {C}),
        sm(cd, {C}), si(cd, {C}), wg(cd, {C}), bg(cd, {C});
    const auto zs = z.set(f.z);
    const auto dzs = dz.set(make_dz(c, in, rng));
    w.set(in.weight);
    b.set(in.bias);
    rm.set(in.running_mean);
    const auto rvs = rv.set(in.running_var);
    sm.poison();
    std::vector<double> sis;
    if (ref::uses_batch_stats(o)) {
        sis = si.set(f.saved_invstd);
    } else {
        si.poison();
    }
    wg.poison();
    bg.poison();
    const auto r = ref::backward(zs, dzs, c.shape, in.weight, in.bias, sis, rvs, o);
    ASSERT_NO_THROW(iabn::backward(z.ref(), dz.ref(), {w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()},
                                   {wg.ref(), bg.ref()}, o));
    const auto got = wg.get();
    EXPECT_LE(rel_err_floor(got, r.weight_grad, r.weight_grad_scale, 0.1), tolerance(c.dtype));
    for (int64_t k = 0; k < C; k++) {
        const size_t j = static_cast<size_t>(k);
        // Only channels whose gradient is clearly away from 0 have a meaningful sign.
        if (std::fabs(r.weight_grad[j]) > 1e-3 * r.weight_grad_scale[j]) {
            EXPECT_EQ(std::signbit(got[j]), std::signbit(r.weight_grad[j]))
                << "channel " << k << " weight " << in.weight[j] << ": got " << got[j] << ", expected "
                << r.weight_grad[j];
        }
    }
    EXPECT_LE(rel_err_floor(dz.get(), r.dx, r.dx_scale, 0.1), tolerance(c.dtype)) << "dx";
}

std::vector<Case> abs_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (Stats st : {Stats::batch, Stats::global_train}) {
            for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
                Case c;
                c.dtype = dt;
                c.layout = lay;
                c.shape = lay == iabn::Layout::nchw ? std::vector<int64_t>{5, 8, 41} : std::vector<int64_t>{5, 41, 8};
                c.stats = st;
                c.act = iabn::Activation::elu;
                c.param = 0.5;
                c.abs_weight = true;
                out.push_back(c);
            }
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, BackwardAbsWeightSign, ::testing::ValuesIn(abs_cases()), CaseName());

// Weight and bias not given (g = 1, b = 0), also with abs_weight requested.
std::vector<Case> missing_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (Stats st : {Stats::batch, Stats::global_eval}) {
            for (int variant = 0; variant < 4; variant++) {
                Case c;
                c.dtype = dt;
                c.shape = {6, 3, 7, 9};
                c.stats = st;
                c.act = iabn::Activation::leaky_relu;
                c.param = 0.01;
                c.weight = variant & 1;
                c.bias = variant & 2;
                if (variant == 0) c.abs_weight = true;
                if (variant == 3) continue;
                out.push_back(c);
            }
        }
    }
    return out;
}

class BackwardWeightBiasMissing : public ::testing::TestWithParam<Case> {};

TEST_P(BackwardWeightBiasMissing, MatchReference) {
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, BackwardWeightBiasMissing, ::testing::ValuesIn(missing_cases()), CaseName());

}  // namespace
}  // namespace iabn_test
