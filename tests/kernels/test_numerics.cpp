// Numerically hard inputs: channels whose mean is 1e4 times their standard deviation (the
// statistics must not lose the variance to cancellation), and ELU saturation (the inverse of
// a * (exp(y) - 1) is -inf at z = -a; dx and the parameter gradients must stay finite and right).
#include "case_runner.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace iabn_test {
namespace {

// ---------------------------------------------------------------------------------------------
// Ill-conditioned statistics (f32).

struct IllCase {
    double mean, std;  // of channel 0; channel c has mean * (1 + 0.1 c), std * (1 + 0.2 c)
    iabn::Layout layout;
    Stats stats;
};

std::string ill_name(const ::testing::TestParamInfo<IllCase>& i) {
    std::string s = std::string(i.param.mean < 0 ? "mean_minus" : "mean_") +
                    std::to_string(static_cast<long long>(std::fabs(i.param.mean))) + "_std_" +
                    std::to_string(static_cast<long long>(i.param.std)) +
                    (i.param.layout == iabn::Layout::nchw ? "_nchw" : "_nhwc") +
                    (i.param.stats == Stats::batch ? "_batch" : "_global");
    return s;
}

class IllConditioned : public ::testing::TestWithParam<IllCase> {};

// z = (x - mean) * invstd with |mean| = 1e4 * std. The inputs are stored in f32 (quantized to
// ~6e-8 * |mean|, i.e. ~6e-4 std), but the reference reads the same stored values, so the error
// measured is the library's alone. A plain f32 sum of squares (E[x^2] - mean^2) loses the variance
// completely here; a shifted/merged accumulation keeps z within 1e-4.
TEST_P(IllConditioned, StatisticsAndZStayAccurate) {
    IABN_TRACE_SEED();
    const IllCase ic = GetParam();
    Rng rng;
    const int64_t C = 3;
    Case c;
    c.layout = ic.layout;
    c.shape = ic.layout == iabn::Layout::nchw ? std::vector<int64_t>{16, C, 171} : std::vector<int64_t>{16, 171, C};
    c.stats = ic.stats;
    c.weight = c.bias = false;  // z = xhat: its norm is the std-normalized data, no offset to hide errors
    const iabn::Options o = c.options();
    const int64_t n = numel(c.shape);
    std::vector<double> mean(C), sd(C);
    for (int64_t k = 0; k < C; k++) {
        mean[static_cast<size_t>(k)] = ic.mean * (1 + 0.1 * static_cast<double>(k));
        sd[static_cast<size_t>(k)] = ic.std * (1 + 0.2 * static_cast<double>(k));
    }
    std::vector<double> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(ref::channel_of(i, c.shape, c.layout));
        x[static_cast<size_t>(i)] = mean[k] + sd[k] * rng.normal();
    }
    Buffer xb(iabn::DType::f32, c.shape), rm(iabn::DType::f32, {C}), rv(iabn::DType::f32, {C}),
        sm(iabn::DType::f32, {C}), si(iabn::DType::f32, {C});
    x = xb.set(x);
    std::vector<double> rm0(C, 0.0), rv0(C, 1.0);
    if (ic.stats != Stats::batch) {  // global statistics: the (exact) data statistics
        for (int64_t k = 0; k < C; k++) {
            rm0[static_cast<size_t>(k)] = mean[static_cast<size_t>(k)];
            rv0[static_cast<size_t>(k)] = sd[static_cast<size_t>(k)] * sd[static_cast<size_t>(k)];
        }
    }
    rm0 = rm.set(rm0);
    rv0 = rv.set(rv0);
    sm.poison();
    si.poison();
    const auto r = ref::forward(x, c.shape, {}, {}, rm0, rv0, o);
    ASSERT_NO_THROW(iabn::forward(xb.ref(), {{}, {}, rm.ref(), rv.ref(), sm.ref(), si.ref()}, o));

    const double tol_z = 1e-4;  // the requirement for |mean| >> std (docs/semantics.md, "Accuracy")
    EXPECT_LE(rel_err(xb.get(), r.z), tol_z) << "z";
    if (ic.stats == Stats::batch) {
        // The mean itself is only representable to ~6e-8 relative in f32; 1e-6 (~16 ulp) catches
        // a drifting accumulation without asking for more than the storage can hold.
        EXPECT_LE(rel_err(sm.get(), r.saved_mean), 1e-6) << "saved_mean";
        // invstd's relative error maps 1:1 onto z's, so it gets z's bound.
        EXPECT_LE(rel_err(si.get(), r.saved_invstd), tol_z) << "saved_invstd";
        EXPECT_LE(rel_err(rm.get(), r.running_mean), 1e-6) << "running_mean";
        EXPECT_LE(rel_err(rv.get(), r.running_var), tol_z) << "running_var";
    }
}

std::vector<IllCase> ill_cases() {
    std::vector<IllCase> out;
    for (auto ms : {std::make_pair(1e4, 1.0), std::make_pair(-3e5, 30.0)}) {
        for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (Stats st : {Stats::batch, Stats::global_eval}) out.push_back({ms.first, ms.second, lay, st});
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(LargeMean, IllConditioned, ::testing::ValuesIn(ill_cases()), ill_name);

// ---------------------------------------------------------------------------------------------
// ELU saturation.
//
// Channel 0: ordinary. Channel 1: w = 0.5, b = -40, every pre-activation below -36 (saturated in
// f32 and f64: exp(y) < half an ulp of 1, so z = -a exactly). Channel 2: w = 10, b = -20, spans
// everything from saturated to positive. Channel 3: ordinary with a negative weight.
// Forward, then backward on the library's stored z and saved_invstd: no NaN/inf anywhere, the
// unsaturated dx and all parameter gradients match the reference (saturated elements: dy = 0).

class EluSaturation : public ::testing::TestWithParam<Case> {};

TEST_P(EluSaturation, ForwardBackwardFiniteAndCorrect) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const bool batch = ref::uses_batch_stats(o);
    const iabn::DType cd = channel_dtype(c.dtype);
    const double tol = tolerance(c.dtype);
    const int64_t C = in.channels;
    ASSERT_EQ(C, 4);
    in.weight = round_to(cd, {1.0, 0.5, 10.0, -1.2});
    in.bias = round_to(cd, {0.3, -40.0, -20.0, 0.5});

    Buffer x(c.dtype, c.shape), dz(c.dtype, c.shape);
    x.set(in.x);
    ChannelBuffers cb = ChannelBuffers::filled(cd, in);
    const std::vector<double> rv_stored = cb.running_var.get();
    const iabn::ChannelState st = cb.state();

    const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    ASSERT_NO_THROW(iabn::forward(x.ref(), st, o));
    const std::vector<double> z = x.get();
    EXPECT_LE(rel_err(z, f.z), tol) << "forward z";
    EXPECT_EQ(count_nonfinite(z), 0) << "forward z";

    const auto dz_stored = dz.set(make_dz(c, in, rng));
    const std::vector<double> si_stored = batch ? cb.saved_invstd.get() : std::vector<double>();
    const auto r = ref::backward(z, dz_stored, c.shape, in.weight, in.bias, si_stored, rv_stored, o);
    ASSERT_GT(r.num_saturated, 0) << "test setup: no saturated element";
    ASSERT_LT(r.num_saturated, static_cast<int64_t>(z.size()) * 3 / 4) << "test setup: too many saturated elements";

    ASSERT_NO_THROW(iabn::backward(x.ref(), dz.ref(), st, cb.grads(), o));
    const std::vector<double> dx = dz.get(), dw = cb.weight_grad.get(), db = cb.bias_grad.get();
    EXPECT_EQ(count_nonfinite(dx), 0) << "dx has NaN/inf";
    EXPECT_EQ(count_nonfinite(dw), 0) << "weight_grad has NaN/inf";
    EXPECT_EQ(count_nonfinite(db), 0) << "bias_grad has NaN/inf";
    EXPECT_LE(rel_err_floor(dx, r.dx, r.dx_scale, 0.1, &r.saturated), tol) << "dx on unsaturated elements";
    if (!batch) {
        // Global statistics: dx = g * invstd * dy and dy = 0 exactly where saturated.
        int64_t nonzero = 0;
        for (size_t i = 0; i < dx.size(); i++) nonzero += (r.saturated[i] && dx[i] != 0.0) ? 1 : 0;
        EXPECT_EQ(nonzero, 0) << "saturated elements must get dx = 0 with global statistics";
    }
    EXPECT_LE(rel_err_floor(dw, r.weight_grad, r.weight_grad_scale, 0.1), channel_tolerance(c.dtype)) << "weight_grad";
    EXPECT_LE(rel_err_floor(db, r.bias_grad, r.bias_grad_scale, 0.1), channel_tolerance(c.dtype)) << "bias_grad";
    EXPECT_EQ(db[1], 0.0) << "bias_grad of the fully saturated channel (every dy = 0)";
    EXPECT_EQ(dw[1], 0.0) << "weight_grad of the fully saturated channel (every dy = 0)";
}

std::vector<Case> saturation_cases() {
    std::vector<Case> out;
    int index = 0;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
        for (double a : {1.0, 0.5}) {
            for (Stats st : {Stats::batch, Stats::global_eval}) {
                Case c;
                c.dtype = dt;
                // Both layouts meet both stats modes, both dtypes and both alphas.
                c.layout = (index % 4 == 1 || index % 4 == 2) ? iabn::Layout::nhwc : iabn::Layout::nchw;
                index++;
                c.shape = c.layout == iabn::Layout::nchw ? std::vector<int64_t>{8, 4, 61} : std::vector<int64_t>{8, 61, 4};
                c.stats = st;
                c.act = iabn::Activation::elu;
                c.param = a;
                out.push_back(c);
            }
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, EluSaturation, ::testing::ValuesIn(saturation_cases()), CaseName());

}  // namespace
}  // namespace iabn_test

namespace iabn_test {
namespace {

// ---------------------------------------------------------------------------------------------
// Constant channels (variance 0) with the smallest epsilon accepted (the smallest normal number
// of the per-channel dtype): invstd = 1/sqrt(epsilon) is huge but finite, z = act(b) exactly, and
// the backward stays finite. (epsilon = 0 gave invstd = inf and z = NaN; it is refused now.)

class ConstantChannels : public ::testing::TestWithParam<Case> {};

TEST_P(ConstantChannels, SmallestEpsilonGivesFiniteResults) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    Inputs in = make_inputs(c, rng);
    iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    o.epsilon = cd == iabn::DType::f64 ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
    const double tol = tolerance(c.dtype);
    const int64_t C = in.channels;
    // Channels 1 and 3 hold one value each (3.25 and -0.5: exact in every dtype).
    for (size_t i = 0; i < in.x.size(); i++) {
        const int64_t ch = ref::channel_of(static_cast<int64_t>(i), c.shape, c.layout);
        if (ch == 1) in.x[i] = 3.25;
        if (ch == 3) in.x[i] = -0.5;
    }

    Buffer x(c.dtype, c.shape), dz(c.dtype, c.shape);
    x.set(in.x);
    ChannelBuffers cb = ChannelBuffers::filled(cd, in);
    const iabn::ChannelState st = cb.state();

    const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    ASSERT_NO_THROW(iabn::forward(x.ref(), st, o));
    const std::vector<double> z = x.get();
    EXPECT_EQ(count_nonfinite(z), 0) << "z";
    const std::vector<double> si = cb.saved_invstd.get();
    EXPECT_EQ(count_nonfinite(si), 0) << "saved_invstd";
    EXPECT_LE(rel_err(z, f.z), tol) << "z";
    EXPECT_LE(rel_err(si, f.saved_invstd), channel_tolerance(c.dtype)) << "saved_invstd";
    // A constant channel normalizes to y = b exactly: one value of z in the whole channel.
    std::vector<double> first(static_cast<size_t>(C), std::numeric_limits<double>::quiet_NaN());
    for (size_t i = 0; i < z.size(); i++) {
        const int64_t ch = ref::channel_of(static_cast<int64_t>(i), c.shape, c.layout);
        if (ch != 1 && ch != 3) continue;
        if (std::isnan(first[ch])) first[ch] = z[i];
        ASSERT_EQ(z[i], first[ch]) << "constant channel " << ch << " gives more than one z, element " << i;
        ASSERT_LE(std::fabs(z[i] - f.z[i]), tol * std::max(1.0, std::fabs(f.z[i]))) << "element " << i;
    }

    const auto dz_stored = dz.set(make_dz(c, in, rng));
    const auto r = ref::backward(z, dz_stored, c.shape, in.weight, in.bias, si, in.running_var, o);
    ASSERT_NO_THROW(iabn::backward(x.ref(), dz.ref(), st, cb.grads(), o));
    const std::vector<double> dx = dz.get();
    EXPECT_EQ(count_nonfinite(dx), 0) << "dx";
    EXPECT_EQ(count_nonfinite(cb.weight_grad.get()), 0) << "weight_grad";
    EXPECT_EQ(count_nonfinite(cb.bias_grad.get()), 0) << "bias_grad";
    EXPECT_LE(rel_err_floor(dx, r.dx, r.dx_scale, 0.1), tol) << "dx";
    // (weight_grad of a constant channel sums dy * xhat with xhat pure rounding noise: only
    // its finiteness is checked.)
    EXPECT_LE(rel_err_floor(cb.bias_grad.get(), r.bias_grad, r.bias_grad_scale, 0.1), channel_tolerance(c.dtype)) << "bias_grad";
}

std::vector<Case> constant_cases() {
    std::vector<Case> out;
    // (No f16: dx of a constant channel is ~1/sqrt(epsilon) ~ 1e19, far beyond f16's 65504, so
    // it is inf, as its exact value rounds to; bf16 has f32's range.)
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64, iabn::DType::bf16}) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (auto act : {iabn::Activation::leaky_relu, iabn::Activation::elu}) {
                Case c;
                c.dtype = dt;
                c.layout = layout;
                c.shape = layout == iabn::Layout::nchw ? std::vector<int64_t>{4, 5, 6, 7} : std::vector<int64_t>{4, 6, 7, 5};
                c.act = act;
                c.param = 0.2;
                out.push_back(c);
            }
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, ConstantChannels, ::testing::ValuesIn(constant_cases()), CaseName());

}  // namespace
}  // namespace iabn_test

namespace iabn_test {
namespace {

// ---------------------------------------------------------------------------------------------
// Exact momentum ends and tiny ELU pre-activations (both found by the fuzzer, tests/fuzz).

class MomentumEnds : public ::testing::TestWithParam<Case> {};

// momentum 1 keeps the running statistics bit for bit, momentum 0 replaces them by the batch's
// (running_mean == saved_mean exactly), also when |mean| is large: the update is evaluated as
// written, not contracted or reordered.
TEST_P(MomentumEnds, OneKeepsAndZeroReplacesExactly) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    Inputs in = make_inputs(c, rng);
    const double offset = c.dtype == iabn::DType::f16 ? 3.0e4 : 3.0e5;  // (f16's largest is 65504)
    for (double& v : in.x) v = offset + 7.0 * v;
    in.x = round_to(c.dtype, in.x);
    const iabn::DType cd = channel_dtype(c.dtype);
    for (double momentum : {1.0, 0.0}) {
        SCOPED_TRACE("momentum " + std::to_string(momentum));
        iabn::Options o = c.options();
        o.momentum = momentum;
        Buffer x(c.dtype, c.shape);
        x.set(in.x);
        ChannelBuffers cb = ChannelBuffers::filled(cd, in);
        for (int64_t i = 0; i < in.channels; i++) cb.running_mean.put(i, 1234.5678 + i);
        const Bytes rm0 = cb.running_mean.snapshot(), rv0 = cb.running_var.snapshot();
        ASSERT_NO_THROW(iabn::forward(x.ref(), cb.state(), o));
        if (momentum == 1.0) {
            EXPECT_TRUE(cb.running_mean.same_bytes(rm0)) << "running_mean changed with momentum 1";
            EXPECT_TRUE(cb.running_var.same_bytes(rv0)) << "running_var changed with momentum 1";
        } else {
            EXPECT_TRUE(cb.running_mean.same_bytes(cb.saved_mean.snapshot())) << "running_mean != saved_mean with momentum 0";
        }
    }
}

std::vector<Case> momentum_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            Case c;
            c.dtype = dt;
            c.layout = layout;
            c.shape = layout == iabn::Layout::nchw ? std::vector<int64_t>{4, 5, 6, 7} : std::vector<int64_t>{4, 6, 7, 5};
            out.push_back(c);
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, MomentumEnds, ::testing::ValuesIn(momentum_cases()), CaseName());

// ELU of pre-activations of 1e-13 (a huge epsilon scales them down): a * (exp(y) - 1) rounds to
// 0 or keeps a few digits; the kernels keep full relative precision (expm1), like the reference.
class EluTinyPreactivations : public ::testing::TestWithParam<Case> {};

TEST_P(EluTinyPreactivations, ZKeepsFullRelativePrecision) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    iabn::Options o = c.options();
    o.epsilon = 1e26;  // invstd ~ 1e-13: every y is O(1e-13)
    Buffer x(c.dtype, c.shape);
    x.set(in.x);
    ChannelBuffers cb = ChannelBuffers::filled(channel_dtype(c.dtype), in);
    const auto f = ref::forward(in.x, c.shape, in.weight, std::vector<double>(in.channels, 0.0), in.running_mean,
                                in.running_var, o);
    for (int64_t i = 0; i < in.channels; i++) cb.bias.put(i, 0.0);
    ASSERT_NO_THROW(iabn::forward(x.ref(), cb.state(), o));
    EXPECT_LE(rel_err(x.get(), f.z), tolerance(c.dtype)) << "z of tiny pre-activations";
}

std::vector<Case> tiny_elu_cases() {
    std::vector<Case> out;
    for (Case c : momentum_cases()) {
        if (c.dtype == iabn::DType::f16) continue;  // 1e-13 is below f16's smallest subnormal (6e-8)
        c.act = iabn::Activation::elu;
        c.param = 0.7;
        out.push_back(c);
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, EluTinyPreactivations, ::testing::ValuesIn(tiny_elu_cases()), CaseName());

}  // namespace
}  // namespace iabn_test
