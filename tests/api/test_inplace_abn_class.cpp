// The owning convenience class iabn::InPlaceABN: defaults, per-channel storage in the right
// dtype, forward + backward against the reference, gradients filled. Plus the small API helpers.
#include "case_runner.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace iabn_test {
namespace {

class InPlaceABNDefaults : public ::testing::TestWithParam<iabn::DType> {};

TEST_P(InPlaceABNDefaults, ParametersStatisticsAndOptions) {
    const iabn::DType dt = GetParam();
    const int64_t C = 5;
    iabn::InPlaceABN abn(C, iabn::Options(), dt);
    EXPECT_EQ(abn.channels(), C);
    EXPECT_EQ(abn.dtype(), dt);
    EXPECT_EQ(abn.weight(), std::vector<double>(C, 1.0));
    EXPECT_EQ(abn.bias(), std::vector<double>(C, 0.0));
    EXPECT_EQ(abn.running_mean(), std::vector<double>(C, 0.0));
    EXPECT_EQ(abn.running_var(), std::vector<double>(C, 1.0));
    // Every per-channel buffer is [C] of the per-channel dtype for `dt`.
    const iabn::DType cd = channel_dtype(dt);
    const iabn::ChannelState& s = abn.state();
    for (const iabn::TensorRef* t : {&s.weight, &s.bias, &s.running_mean, &s.running_var, &s.saved_mean,
                                     &s.saved_invstd, &abn.grads().weight_grad, &abn.grads().bias_grad}) {
        EXPECT_NE(t->data, nullptr);
        EXPECT_EQ(t->dtype, cd);
        EXPECT_EQ(t->shape, std::vector<int64_t>{C});
        EXPECT_EQ(t->device, iabn::Device::cpu);
    }
    // Paddle's defaults (docs/semantics.md, "Defaults").
    const iabn::Options& o = abn.options();
    EXPECT_EQ(o.activation, iabn::Activation::identity);
    EXPECT_EQ(o.activation_param, 1.0);
    EXPECT_EQ(o.epsilon, 1e-5);
    EXPECT_EQ(o.momentum, 0.9);
    EXPECT_EQ(o.layout, iabn::Layout::nchw);
    EXPECT_TRUE(o.training);
    EXPECT_FALSE(o.use_global_stats);
    EXPECT_FALSE(o.unbiased_running_var);
    EXPECT_FALSE(o.abs_weight);
}

TEST_P(InPlaceABNDefaults, SetWeightAndBiasRoundTrip) {
    const iabn::DType dt = GetParam();
    iabn::InPlaceABN abn(3, iabn::Options(), dt);
    const std::vector<double> w = round_to(channel_dtype(dt), {0.5, -1.25, 3.0}),
                              b = round_to(channel_dtype(dt), {0.1, 0.2, -0.3});
    abn.set_weight(w);
    abn.set_bias(b);
    EXPECT_EQ(abn.weight(), w);
    EXPECT_EQ(abn.bias(), b);
}

INSTANTIATE_TEST_SUITE_P(DTypes, InPlaceABNDefaults, ::testing::Values(iabn::DType::f32, iabn::DType::f64),
                         [](const ::testing::TestParamInfo<iabn::DType>& i) {
                             return std::string(i.param == iabn::DType::f64 ? "f64" : "f32");
                         });

// Poison an owned buffer through its (mutable) data pointer: the class must overwrite it.
void poison_ref(const iabn::TensorRef& t) {
    const int64_t n = numel(t.shape);
    for (int64_t i = 0; i < n; i++) {
        if (t.dtype == iabn::DType::f64) {
            static_cast<double*>(t.data)[i] = std::nan("");
        } else {
            static_cast<float*>(t.data)[i] = std::nanf("");
        }
    }
}

class InPlaceABNMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(InPlaceABNMatchesReference, ForwardBackwardAndGrads) {
    IABN_TRACE_SEED();
    const Case c = GetParam();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const double tol = tolerance(c.dtype);
    iabn::InPlaceABN abn(in.channels, c.options(), c.dtype);
    abn.set_weight(in.weight);
    abn.set_bias(in.bias);
    poison_ref(abn.state().saved_mean);
    poison_ref(abn.state().saved_invstd);
    poison_ref(abn.grads().weight_grad);
    poison_ref(abn.grads().bias_grad);
    const std::vector<double> rm0(static_cast<size_t>(in.channels), 0.0), rv0(static_cast<size_t>(in.channels), 1.0);
    const iabn::Options o = abn.options();

    Buffer x(c.dtype, c.shape), dz(c.dtype, c.shape);
    x.set(in.x);
    const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, rm0, rv0, o);
    ASSERT_NO_THROW(abn.forward(x.ref()));
    EXPECT_LE(rel_err(x.get(), f.z), tol) << "z";
    if (ref::uses_batch_stats(o)) {
        EXPECT_LE(rel_err(abn.saved_mean(), f.saved_mean), tol) << "saved_mean";
        EXPECT_LE(rel_err(abn.saved_invstd(), f.saved_invstd), tol) << "saved_invstd";
        EXPECT_LE(rel_err(abn.running_mean(), f.running_mean), tol) << "running_mean";
        EXPECT_LE(rel_err(abn.running_var(), f.running_var), tol) << "running_var";
    } else {
        EXPECT_EQ(abn.running_mean(), rm0);
        EXPECT_EQ(abn.running_var(), rv0);
    }

    const std::vector<double> z = x.get();
    const std::vector<double> dzv = dz.set(make_dz(c, in, rng));
    const auto r = ref::backward(z, dzv, c.shape, in.weight, in.bias,
                                 ref::uses_batch_stats(o) ? abn.saved_invstd() : std::vector<double>(),
                                 abn.running_var(), o);
    ASSERT_NO_THROW(abn.backward(x.ref(), dz.ref()));
    EXPECT_LE(rel_err_floor(dz.get(), r.dx, r.dx_scale, 0.1), tol) << "dx";
    EXPECT_EQ(count_nonfinite(abn.weight_grad()), 0) << "weight_grad not filled";
    EXPECT_EQ(count_nonfinite(abn.bias_grad()), 0) << "bias_grad not filled";
    EXPECT_LE(rel_err_floor(abn.weight_grad(), r.weight_grad, r.weight_grad_scale, 0.1), tol) << "weight_grad";
    EXPECT_LE(rel_err_floor(abn.bias_grad(), r.bias_grad, r.bias_grad_scale, 0.1), tol) << "bias_grad";
}

std::vector<Case> class_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (auto act : {std::make_pair(iabn::Activation::elu, 0.5), std::make_pair(iabn::Activation::leaky_relu, 0.01),
                         std::make_pair(iabn::Activation::identity, 1.0)}) {
            Case c;
            c.dtype = dt;
            c.shape = {4, 6, 9, 7};
            c.act = act.first;
            c.param = act.second;
            out.push_back(c);
        }
        Case g;  // global statistics (eval), nhwc
        g.dtype = dt;
        g.layout = iabn::Layout::nhwc;
        g.shape = {4, 9, 7, 6};
        g.act = iabn::Activation::leaky_relu;
        g.param = 0.3;
        g.stats = Stats::global_eval;
        out.push_back(g);
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, InPlaceABNMatchesReference, ::testing::ValuesIn(class_cases()), CaseName());

TEST(InPlaceABNErrors, WrongTensorDtypeThrowsAndWritesNothing) {
    iabn::InPlaceABN abn(4, iabn::Options(), iabn::DType::f32);
    Buffer x(iabn::DType::f64, {3, 4, 5});
    for (int64_t i = 0; i < x.size(); i++) x.put(i, static_cast<double>(i % 7));
    const Bytes x0 = x.snapshot();
    const auto rm0 = abn.running_mean(), rv0 = abn.running_var();
    EXPECT_THROW(abn.forward(x.ref()), iabn::Error);
    EXPECT_TRUE(x.same_bytes(x0));
    EXPECT_EQ(abn.running_mean(), rm0);
    EXPECT_EQ(abn.running_var(), rv0);
}

TEST(InPlaceABNErrors, WrongChannelCountThrows) {
    iabn::InPlaceABN abn(4, iabn::Options(), iabn::DType::f32);
    Buffer x(iabn::DType::f32, {3, 5, 5});
    for (int64_t i = 0; i < x.size(); i++) x.put(i, static_cast<double>(i % 7));
    const Bytes x0 = x.snapshot();
    EXPECT_THROW(abn.forward(x.ref()), iabn::Error);
    EXPECT_TRUE(x.same_bytes(x0));
}

TEST(InPlaceABNErrors, ChannelCountOutsideTheKernelsRangeThrows) {
    for (int64_t c : {int64_t{0}, int64_t{-3}, int64_t{1} << 31, int64_t{1} << 62}) {
        EXPECT_THROW(iabn::InPlaceABN{c}, iabn::Error) << c;
    }
}

// InPlaceABN is a value type: a copy owns its own per-channel buffers. The copy of a layer after
// a training step, used after the original is gone, computes what the original would have, and
// leaves no trace in other layers (a shallow copy wrote into freed memory).
class InPlaceABNCopies : public ::testing::TestWithParam<iabn::DType> {};

TEST_P(InPlaceABNCopies, CopiesAreDeepAndOutliveTheOriginal) {
    IABN_TRACE_SEED();
    const iabn::DType dt = GetParam();
    Case c;
    c.dtype = dt;
    c.shape = {3, 4, 5, 6};
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.1;
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    Buffer x1(dt, c.shape), x2(dt, c.shape), x3(dt, c.shape);
    x1.set(in.x);
    x2.set(in.x);
    x3.set(in.x);

    auto original = std::make_unique<iabn::InPlaceABN>(in.channels, c.options(), dt);
    original->set_weight(in.weight);
    original->set_bias(in.bias);
    original->forward(x1.ref());  // one step: running statistics move away from (0, 1)
    iabn::InPlaceABN twin = *original;          // copy-constructed
    iabn::InPlaceABN assigned(1);
    assigned = *original;                       // copy-assigned
    const std::vector<double> rm = original->running_mean(), rv = original->running_var();
    original->forward(x2.ref());  // a second step on the original only
    const std::vector<double> expected_rm = original->running_mean(), expected_rv = original->running_var();
    const Bytes expected_z = x2.snapshot();
    original.reset();

    for (iabn::InPlaceABN* layer : {&twin, &assigned}) {
        EXPECT_EQ(layer->channels(), in.channels);
        EXPECT_EQ(layer->running_mean(), rm) << "the copy saw the original's second step";
        EXPECT_EQ(layer->running_var(), rv);
        Buffer x(dt, c.shape);
        x.set(in.x);
        ASSERT_NO_THROW(layer->forward(x.ref()));
        EXPECT_TRUE(x.same_bytes(expected_z)) << "z of the copy differs from the original's";
        EXPECT_EQ(layer->running_mean(), expected_rm);
        EXPECT_EQ(layer->running_var(), expected_rv);
    }
    // Each copy's buffers are its own.
    EXPECT_NE(twin.state().running_mean.data, assigned.state().running_mean.data);
    ASSERT_NO_THROW(twin.forward(x3.ref()));
    EXPECT_EQ(assigned.running_mean(), expected_rm) << "a step of one copy changed the other";
}

TEST_P(InPlaceABNCopies, MovedFromLayerIsEmptyAndThrows) {
    const iabn::DType dt = GetParam();
    iabn::InPlaceABN a(4, iabn::Options(), dt);
    a.set_weight({1, 2, 3, 4});
    const void* storage = a.state().weight.data;
    iabn::InPlaceABN b = std::move(a);
    EXPECT_EQ(b.channels(), 4);
    EXPECT_EQ(b.state().weight.data, storage) << "a move should not copy the buffers";
    EXPECT_EQ(b.weight(), (std::vector<double>{1, 2, 3, 4}));
    EXPECT_EQ(a.channels(), 0);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    EXPECT_TRUE(a.weight().empty());
    Buffer x(dt, {3, 4, 5});
    for (int64_t i = 0; i < x.size(); i++) x.put(i, static_cast<double>(i % 7));
    const Bytes x0 = x.snapshot();
    EXPECT_THROW(a.forward(x.ref()), iabn::Error);
    EXPECT_TRUE(x.same_bytes(x0));
    iabn::InPlaceABN c(2, iabn::Options(), dt);
    c = std::move(b);  // move-assigned
    EXPECT_EQ(c.weight(), (std::vector<double>{1, 2, 3, 4}));
    EXPECT_NO_THROW(c.forward(x.ref()));
}

INSTANTIATE_TEST_SUITE_P(DTypes, InPlaceABNCopies, ::testing::Values(iabn::DType::f32, iabn::DType::f64),
                         [](const ::testing::TestParamInfo<iabn::DType>& i) {
                             return std::string(i.param == iabn::DType::f64 ? "f64" : "f32");
                         });

TEST(Api, NamesAndSizes) {
    EXPECT_STREQ(iabn::to_string(iabn::Activation::identity), "identity");
    EXPECT_STREQ(iabn::to_string(iabn::Activation::leaky_relu), "leaky_relu");
    EXPECT_STREQ(iabn::to_string(iabn::Activation::elu), "elu");
    EXPECT_STREQ(iabn::to_string(iabn::Layout::nchw), "nchw");
    EXPECT_STREQ(iabn::to_string(iabn::Layout::nhwc), "nhwc");
    EXPECT_STREQ(iabn::to_string(iabn::DType::f32), "f32");
    EXPECT_STREQ(iabn::to_string(iabn::DType::f64), "f64");
    EXPECT_EQ(iabn::dtype_size(iabn::DType::f32), 4u);
    EXPECT_EQ(iabn::dtype_size(iabn::DType::f64), 8u);
    EXPECT_EQ(iabn::dtype_size(iabn::DType::f16), 2u);
    EXPECT_EQ(iabn::dtype_size(iabn::DType::bf16), 2u);
}

TEST(Api, KernelTargetIsNamed) {
    const std::string t = iabn::kernel_target();
    EXPECT_FALSE(t.empty());
    ::testing::Test::RecordProperty("kernel_target", t);
    std::printf("kernel_target: %s\n", t.c_str());
}

}  // namespace
}  // namespace iabn_test
