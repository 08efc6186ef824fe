// 16-bit tensors (f16, bf16): what the case grid's norm-wise tolerances cannot see.
//
// * Rounding: with global statistics, no weight, running_var = 1 and the smallest epsilon, the
//   forward computes z = x + b exactly in f32, so the stored z must be exactly x + b rounded to
//   nearest, ties to even (half.h's to_bits), including ties, overflow to inf and subnormals;
//   the backward likewise for dx = w * dz. NaN stays NaN.
// * The error the 16-bit z adds: the backward recovers y from z rounded to 16 bits. Measured
//   against the float64 backward of the unrounded z: leaky_relu/identity lose a few unit
//   roundoffs; ELU loses more where z approaches -a (dy = dz * (z + a), y = log1p(z / a)).
#include "case_runner.h"
#include "device_mirror.h"

#include <cstdio>

namespace iabn_test {
namespace {

// On the CPU and on OpenCL (whose kernels convert 16-bit floats at the bit level); CUDA too.
struct HalfCase {
    iabn::DType dtype;
    iabn::Layout layout;
    iabn::Device device;

    // Options for the case's device; "" or why the device cannot run here.
    std::string prepare(iabn::Options& o) const {
        o.layout = layout;
        if (device == iabn::Device::cpu) return "";
        TestDevice* d = test_device(device);
        if (!d) return device_unavailable(device);
        d->set_queue(o, nullptr);
        return "";
    }
};

std::string half_case_name(const ::testing::TestParamInfo<HalfCase>& i) {
    const iabn::Device d = i.param.device;
    return std::string(d == iabn::Device::cpu ? "" : d == iabn::Device::cuda ? "cuda_" : "opencl_") +
           iabn::to_string(i.param.dtype) + (i.param.layout == iabn::Layout::nchw ? "_nchw" : "_nhwc");
}

std::vector<HalfCase> half_cases() {
    std::vector<HalfCase> out;
    for (iabn::Device d : {iabn::Device::cpu, iabn::Device::opencl, iabn::Device::cuda}) {
        for (iabn::DType dt : {iabn::DType::f16, iabn::DType::bf16}) {
            for (iabn::Layout l : {iabn::Layout::nchw, iabn::Layout::nhwc}) out.push_back({dt, l, d});
        }
    }
    return out;
}

class HalfRounding : public ::testing::TestWithParam<HalfCase> {};

// Per channel: how x and b are drawn. Every x + b is exact in f32 (at most 24 significant bits).
enum class Regime { fine, ties, subnormal, overflow };

TEST_P(HalfRounding, ForwardStoresXPlusBRoundedToNearestEven) {
    IABN_TRACE_SEED();
    const HalfCase hc = GetParam();
    const HalfFormat f = half_format(hc.dtype);
    Rng rng;
    const Regime regimes[] = {Regime::fine, Regime::ties, Regime::subnormal, Regime::overflow,
                              Regime::fine, Regime::ties, Regime::ties, Regime::subnormal};
    const int64_t C = 8, N = 3, S = 171;
    const std::vector<int64_t> shape = hc.layout == iabn::Layout::nchw ? std::vector<int64_t>{N, C, S}
                                                                       : std::vector<int64_t>{N, S, C};
    Buffer x(hc.dtype, shape), bias(iabn::DType::f32, {C}), rm(iabn::DType::f32, {C}), rv(iabn::DType::f32, {C});
    const int m = f.mantissa_bits;
    for (int64_t k = 0; k < C; k++) {
        rm.put(k, 0.0);
        rv.put(k, 1.0);
        switch (regimes[k]) {
            case Regime::fine: bias.put(k, std::ldexp(std::floor(rng.uniform(-1, 1) * 1048576.0), -20)); break;
            // b on a grid a quarter of the spacing in [1, 2): x + b often lands on a midpoint.
            case Regime::ties: bias.put(k, std::ldexp(std::floor(rng.uniform(-8, 8) * 16.0) + 0.5, -m - 4) * 16.0); break;
            case Regime::subnormal: bias.put(k, std::ldexp(std::floor(rng.uniform(-64, 64)), f.emin() - m - 3)); break;
            case Regime::overflow: bias.put(k, std::ldexp(std::floor(rng.uniform(1, 4)), f.emax() - m)); break;
        }
    }
    for (int64_t i = 0; i < x.size(); i++) {
        const int64_t k = ref::channel_of(i, shape, hc.layout);
        double v = 0;
        switch (regimes[k]) {
            case Regime::fine:
            case Regime::ties: v = rng.uniform(-4, 4); break;
            case Regime::subnormal: v = std::ldexp(std::floor(rng.uniform(-512, 512)), f.emin() - m); break;
            case Regime::overflow: v = f.largest() * rng.uniform(0.995, 1.0); break;
        }
        x.put(i, v);
    }
    x.set_bits(5, to_bits(f, std::numeric_limits<double>::quiet_NaN()));  // NaN in, NaN out
    const std::vector<double> xs = x.get();

    iabn::Options o;
    if (const std::string why = hc.prepare(o); !why.empty()) GTEST_SKIP() << why;
    o.training = false;  // global statistics: running_mean 0, running_var 1
    o.epsilon = std::numeric_limits<float>::min();  // 1 + epsilon == 1: scale exactly 1
    {
        DeviceMirror on(hc.device, nullptr);
        iabn::ChannelState st;
        st.bias = bias.ref();
        st.running_mean = rm.ref();
        st.running_var = rv.ref();
        ASSERT_NO_THROW(iabn::forward(x.ref(), st, o));
        on.download();
    }

    int64_t wrong = 0, ties = 0, infinities = 0, subnormals = 0;
    for (int64_t i = 0; i < x.size(); i++) {
        const double exact = xs[static_cast<size_t>(i)] + bias.get(ref::channel_of(i, shape, hc.layout));
        const uint16_t want = to_bits(f, exact), got = x.bits(i);
        if (std::isnan(exact)) {
            EXPECT_TRUE(std::isnan(x.get(i))) << "element " << i << ": NaN in, " << x.get(i) << " out";
            continue;
        }
        const double lo = from_bits(f, want);
        // A tie: exactly halfway between two neighbours (spacing 2^(e - m) at exponent e).
        const double spacing = std::ldexp(1.0, std::max(std::ilogb(std::fabs(exact)), f.emin()) - m);
        ties += exact != 0 && std::fmod(std::fabs(exact), spacing) == spacing / 2 ? 1 : 0;
        infinities += std::isinf(lo) ? 1 : 0;
        subnormals += (want & f.exponent_mask()) == 0 && (want & 0x7fff) != 0 ? 1 : 0;
        if (got != want && wrong++ < 5) {
            ADD_FAILURE() << "element " << i << ": x + b = " << exact << " stored as 0x" << std::hex << got
                          << ", rounding to nearest even gives 0x" << want << std::dec;
        }
    }
    EXPECT_EQ(wrong, 0) << "elements not rounded to nearest even";
    EXPECT_GT(ties, 10) << "test setup: too few exact ties";
    EXPECT_GT(subnormals, 10) << "test setup: too few subnormal results";
    if (hc.dtype == iabn::DType::f16) {
        EXPECT_GT(infinities, 10) << "test setup: too few overflows to inf";
    }
}

TEST_P(HalfRounding, BackwardStoresWTimesDzRoundedToNearestEven) {
    IABN_TRACE_SEED();
    const HalfCase hc = GetParam();
    const HalfFormat f = half_format(hc.dtype);
    Rng rng;
    const int64_t C = 5, N = 2, S = 203;
    const std::vector<int64_t> shape = hc.layout == iabn::Layout::nchw ? std::vector<int64_t>{N, C, S}
                                                                       : std::vector<int64_t>{N, S, C};
    Buffer z(hc.dtype, shape), dz(hc.dtype, shape), w(iabn::DType::f32, {C}), rv(iabn::DType::f32, {C});
    for (int64_t k = 0; k < C; k++) {
        // 1 + 8 significant bits, times dz's 11 or 8: exact in f32; odd multipliers make ties.
        w.put(k, (256.0 + 2 * std::floor(rng.uniform(0, 128)) + 1) / 256.0 * rng.sign());
        rv.put(k, 1.0);
    }
    for (int64_t i = 0; i < z.size(); i++) {
        z.put(i, rng.uniform(0, 3));  // identity: z is y, and the gradient does not depend on it
        dz.put(i, rng.normal());
    }
    const std::vector<double> dzs = dz.get();
    iabn::Options o;
    if (const std::string why = hc.prepare(o); !why.empty()) GTEST_SKIP() << why;
    o.training = false;
    o.epsilon = std::numeric_limits<float>::min();
    {
        DeviceMirror on(hc.device, nullptr);
        iabn::ChannelState st;
        st.weight = w.ref();
        st.running_var = rv.ref();
        ASSERT_NO_THROW(iabn::backward(z.ref(), dz.ref(), st, {}, o));
        on.download();
    }
    int64_t wrong = 0;
    for (int64_t i = 0; i < dz.size(); i++) {
        const double exact = w.get(ref::channel_of(i, shape, hc.layout)) * dzs[static_cast<size_t>(i)];
        const uint16_t want = to_bits(f, exact), got = dz.bits(i);
        if (got != want && wrong++ < 5) {
            ADD_FAILURE() << "element " << i << ": w * dz = " << exact << " stored as 0x" << std::hex << got
                          << ", rounding to nearest even gives 0x" << want << std::dec;
        }
    }
    EXPECT_EQ(wrong, 0) << "elements not rounded to nearest even";
}

INSTANTIATE_TEST_SUITE_P(Cases, HalfRounding, ::testing::ValuesIn(half_cases()), half_case_name);

// ---------------------------------------------------------------------------------------------
// The backward of a 16-bit forward against the float64 backward of the exact z: the error that
// storing z in 16 bits adds, per activation. Bounds in unit roundoffs u of the dtype; the
// measured values are printed (docs/semantics.md quotes them).

struct RecoveryCase {
    iabn::DType dtype;
    iabn::Activation act;
    double param;
    double bound_in_u;  // norm-wise dx error bound, in units of u
};

class HalfRecovery : public ::testing::TestWithParam<RecoveryCase> {};

TEST_P(HalfRecovery, BackwardFromRoundedZStaysWithinBound) {
    IABN_TRACE_SEED();
    const RecoveryCase rc = GetParam();
    const HalfFormat f = half_format(rc.dtype);
    Rng rng;
    Case c;
    c.dtype = rc.dtype;
    c.shape = {16, 6, 257};
    c.act = rc.act;
    c.param = rc.param;
    const Inputs in = make_inputs(c, rng);  // x already stored in 16 bits
    const iabn::Options o = c.options();
    const auto fwd = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    Buffer z(c.dtype, c.shape), dz(c.dtype, c.shape);
    const std::vector<double> z16 = z.set(fwd.z);  // what a 16-bit forward stores
    // Elements whose 16-bit z lost what the backward needs, excluded from dx: ELU elements that
    // saturated (z = -a: the pre-activation is lost) and negative z that underflowed to -0 (the
    // kink rule takes -0 as y >= 0: the negative branch is lost; f16 only, for |z| < 2^-25).
    std::vector<char> lost(z16.size(), 0);
    std::vector<double> dz_values = make_dz(c, in, rng);
    int64_t saturated = 0, underflowed = 0;
    for (size_t i = 0; i < z16.size(); i++) {
        const bool sat = c.act == iabn::Activation::elu && z16[i] / c.param <= -1;
        const bool under = z16[i] == 0 && fwd.z[i] < 0;
        saturated += sat;
        underflowed += under;
        lost[i] = sat || under;
        // An underflowed element's slope is 1 instead of the negative branch's: an error of
        // O(dz) in the channel's sums, not of O(u), which a few such elements (0-6 in a draw)
        // would put over any bound in u. Its dz is zero, so the sums measure the rest.
        if (under) dz_values[i] = 0;
    }
    const std::vector<double> dzs = dz.set(dz_values);
    ChannelBuffers cb = ChannelBuffers::filled(iabn::DType::f32, in);
    cb.saved_invstd.set(fwd.saved_invstd);
    const std::vector<double> si = cb.saved_invstd.get();
    ASSERT_NO_THROW(iabn::backward(z.ref(), dz.ref(), cb.state(), cb.grads(), o));

    // The exact backward: the unrounded z, the same dz and invstd.
    const auto exact = ref::backward(fwd.z, dzs, c.shape, in.weight, in.bias, si, {}, o);
    const double u = f.unit_roundoff();
    const double dx_err = rel_err_floor(dz.get(), exact.dx, exact.dx_scale, 0.1, &lost);
    const double wg_err = rel_err_floor(cb.weight_grad.get(), exact.weight_grad, exact.weight_grad_scale, 0.1);
    const double bg_err = rel_err_floor(cb.bias_grad.get(), exact.bias_grad, exact.bias_grad_scale, 0.1);
    std::printf("  %s %s: dx %.2f u, weight_grad %.2f u, bias_grad %.2f u (u = 2^%d); of %zu elements %lld saturated, "
                "%lld underflowed to -0\n",
                iabn::to_string(c.dtype), act_name(c.act, c.param).c_str(), dx_err / u, wg_err / u, bg_err / u,
                std::ilogb(u), z16.size(), static_cast<long long>(saturated), static_cast<long long>(underflowed));
    EXPECT_EQ(count_nonfinite(dz.get()), 0) << "dx has NaN/inf";
    EXPECT_LE(dx_err, rc.bound_in_u * u) << "dx";
    EXPECT_LE(wg_err, rc.bound_in_u * u) << "weight_grad";
    EXPECT_LE(bg_err, rc.bound_in_u * u) << "bias_grad";
}

std::vector<RecoveryCase> recovery_cases() {
    std::vector<RecoveryCase> out;
    for (iabn::DType dt : {iabn::DType::f16, iabn::DType::bf16}) {
        out.push_back({dt, iabn::Activation::identity, 1.0, 4});
        out.push_back({dt, iabn::Activation::leaky_relu, 0.01, 4});
        out.push_back({dt, iabn::Activation::elu, 1.0, 16});
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, HalfRecovery, ::testing::ValuesIn(recovery_cases()),
                         [](const ::testing::TestParamInfo<RecoveryCase>& i) {
                             return std::string(iabn::to_string(i.param.dtype)) + "_" +
                                    act_name(i.param.act, i.param.param);
                         });

}  // namespace
}  // namespace iabn_test
