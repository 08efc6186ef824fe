// Determinism: with the same inputs and thread count, two runs give bit-identical z, dx and
// per-channel outputs (no order-dependent parallel reductions). And the thread count changes
// results at most by rounding (both runs stay within tolerance of the reference).
#include "case_runner.h"
#include "device_mirror.h"

#include <cstring>

namespace iabn_test {
namespace {

struct RunOutputs {
    Bytes z, saved_mean, saved_invstd, running_mean, running_var, dx, weight_grad, bias_grad;
};

// Forward then backward on fresh copies of the same inputs.
RunOutputs run_once(const Case& c, const Inputs& in, const std::vector<double>& dz_values) {
    const iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    const int64_t C = in.channels;
    Buffer x(c.dtype, c.shape), dz(c.dtype, c.shape), w(cd, {C}), b(cd, {C}), rm(cd, {C}), rv(cd, {C}),
        sm(cd, {C}), si(cd, {C}), wg(cd, {C}), bg(cd, {C});
    x.set(in.x);
    dz.set(dz_values);
    w.set(in.weight);
    b.set(in.bias);
    rm.set(in.running_mean);
    rv.set(in.running_var);
    sm.poison();
    si.poison();
    wg.poison();
    bg.poison();
    {
        DeviceMirror on(c.device, c.queue);  // device cases: on device copies, read back after the call
        iabn::forward(x.ref(), {w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()}, o);
        on.download();
    }
    RunOutputs out;
    out.z = x.snapshot();
    out.saved_mean = sm.snapshot();
    out.saved_invstd = si.snapshot();
    out.running_mean = rm.snapshot();
    out.running_var = rv.snapshot();
    rv.set(in.running_var);  // the global-stats backward reads what the forward read
    {
        DeviceMirror on(c.device, c.queue);
        iabn::backward(x.ref(), dz.ref(), {w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()},
                       {wg.ref(), bg.ref()}, o);
        on.download();
    }
    out.dx = dz.snapshot();
    out.weight_grad = wg.snapshot();
    out.bias_grad = bg.snapshot();
    return out;
}

class Determinism : public ::testing::TestWithParam<Case> {};

TEST_P(Determinism, TwoRunsWithTwoThreadsAreBitIdentical) {
    const Case c = GetParam();
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const std::vector<double> dzv = make_dz(c, in, rng);
    ASSERT_NO_THROW(iabn::set_num_threads(2));
    RunOutputs a, b;
    ASSERT_NO_THROW(a = run_once(c, in, dzv));
    ASSERT_NO_THROW(b = run_once(c, in, dzv));
    EXPECT_TRUE(a.z == b.z) << "z";
    EXPECT_TRUE(a.saved_mean == b.saved_mean) << "saved_mean";
    EXPECT_TRUE(a.saved_invstd == b.saved_invstd) << "saved_invstd";
    EXPECT_TRUE(a.running_mean == b.running_mean) << "running_mean";
    EXPECT_TRUE(a.running_var == b.running_var) << "running_var";
    EXPECT_TRUE(a.dx == b.dx) << "dx";
    EXPECT_TRUE(a.weight_grad == b.weight_grad) << "weight_grad";
    EXPECT_TRUE(a.bias_grad == b.bias_grad) << "bias_grad";
}

// Results with 1 and with 2 threads are both close to the reference (not necessarily identical).
TEST_P(Determinism, OneAndTwoThreadsBothMatchReference) {
    const Case c = GetParam();
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const std::vector<double> dzv = make_dz(c, in, rng);
    const auto f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    for (int threads : {1, 2}) {
        SCOPED_TRACE("threads " + std::to_string(threads));
        ASSERT_NO_THROW(iabn::set_num_threads(threads));
        RunOutputs out;
        ASSERT_NO_THROW(out = run_once(c, in, dzv));
        Buffer z(c.dtype, c.shape);
        std::memcpy(z.raw(), out.z.data(), out.z.size());
        EXPECT_LE(rel_err(z.get(), f.z), tolerance(c.dtype)) << "z";
        // Backward reference on the library's own stored z and saved_invstd.
        Buffer si(channel_dtype(c.dtype), {in.channels});
        std::memcpy(si.raw(), out.saved_invstd.data(), out.saved_invstd.size());
        Buffer dx(c.dtype, c.shape);
        std::memcpy(dx.raw(), out.dx.data(), out.dx.size());
        const auto r = ref::backward(z.get(), dzv, c.shape, in.weight, in.bias,
                                     ref::uses_batch_stats(o) ? si.get() : std::vector<double>(), in.running_var, o);
        EXPECT_LE(rel_err_floor(dx.get(), r.dx, r.dx_scale, 0.1), tolerance(c.dtype)) << "dx";
    }
}

std::vector<Case> determinism_cases() {
    std::vector<Case> out;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64}) {
        for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (Stats st : {Stats::batch, Stats::global_train}) {
                Case c;
                c.dtype = dt;
                c.layout = lay;
                // Large enough (~128k elements) to be split across threads.
                c.shape = lay == iabn::Layout::nchw ? std::vector<int64_t>{8, 16, 1001} : std::vector<int64_t>{8, 1001, 16};
                c.stats = st;
                c.act = iabn::Activation::elu;
                c.param = 0.5;
                out.push_back(c);
                for (iabn::Device d : {iabn::Device::cuda, iabn::Device::opencl}) {
                    c.device = d;  // the GPU reductions add in a fixed order too
                    out.push_back(c);
                }
            }
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, Determinism, ::testing::ValuesIn(determinism_cases()), CaseName());

}  // namespace
}  // namespace iabn_test
