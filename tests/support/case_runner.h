// A test case of the forward/backward contract and the checks that compare the library with the
// float64 reference. Shared by the forward, backward, edge-shape and class suites.
#pragma once

#include "reference.h"
#include "test_util.h"

#include <iabn/iabn.h>

#include <ostream>
#include <string>
#include <vector>

namespace iabn_test {

// batch: training with batch statistics. global_eval: training = false.
// global_train: training = true with use_global_stats = true (also global statistics).
enum class Stats { batch, global_eval, global_train };

struct Case {
    iabn::DType dtype = iabn::DType::f32;
    iabn::Layout layout = iabn::Layout::nchw;
    std::vector<int64_t> shape;
    iabn::Activation act = iabn::Activation::identity;
    double param = 1.0;
    Stats stats = Stats::batch;
    bool weight = true;       // weight given (else g = 1)
    bool bias = true;         // bias given (else b = 0)
    bool abs_weight = false;  // g = |w| + eps; the data then contain negative weights
    bool unbiased = false;    // unbiased running variance
    bool grads = true;        // request weight_grad / bias_grad in backward
    iabn::Device device = iabn::Device::cpu;  // a GPU: the same case on device copies (device_mirror.h)
    void* queue = nullptr;  // a device case's stream or queue (nullptr: the device's default)

    iabn::Options options() const;
    std::string name() const;  // gtest-safe: [A-Za-z0-9_]
};

void PrintTo(const Case& c, std::ostream* os);
std::string act_name(iabn::Activation act, double param);

// Inputs of one case, as stored in the case's dtype (so the reference sees what the library reads).
struct Inputs {
    int64_t channels = 0, per_channel = 0;
    std::vector<double> x;
    std::vector<double> weight, bias;  // empty when not given
    std::vector<double> running_mean, running_var;
    std::vector<double> data_mean, data_std;  // the distribution x was drawn from, per channel
};

// x ~ N(mean_c, std_c) per channel with mean_c in [-2, 2], std_c in [0.5, 2]; weight magnitudes in
// [0.5, 1.5] with random signs (abs_weight: channel 0 always negative); bias in [-1, 1]. With
// global statistics the running statistics are near the data's, so pre-activations stay O(1).
Inputs make_inputs(const Case& c, Rng& rng);

// dz = m_c + beta_c * xhat + N(0, 1) with |m_c|, |beta_c| in [0.5, 1.5]: the channel sums of dy and
// dy * xhat are then a sizeable fraction of the sums of their magnitudes (no chance cancellation).
std::vector<double> make_dz(const Case& c, const Inputs& in, Rng& rng);

// Rounds every value to the dtype (f16 and bf16 to nearest even, as half.h does).
std::vector<double> round_to(iabn::DType dtype, std::vector<double> v);

// Per-channel buffers of one call; `given` ones are filled, the others stay empty (data == nullptr).
struct ChannelBuffers {
    Buffer weight, bias, running_mean, running_var, saved_mean, saved_invstd, weight_grad, bias_grad;
    bool has_weight = false, has_bias = false, has_grads = false;

    ChannelBuffers(iabn::DType cd, int64_t C, bool w, bool b, bool grads)
        : weight(cd, {C}), bias(cd, {C}), running_mean(cd, {C}), running_var(cd, {C}), saved_mean(cd, {C}),
          saved_invstd(cd, {C}), weight_grad(cd, {C}), bias_grad(cd, {C}), has_weight(w), has_bias(b),
          has_grads(grads) {}

    // Every buffer of a call that gives all of them: weight, bias and running statistics from
    // `in` (as stored), saved statistics and gradients poisoned (NaN).
    static ChannelBuffers filled(iabn::DType cd, const Inputs& in) {
        ChannelBuffers cb(cd, in.channels, true, true, true);
        cb.weight.set(in.weight);
        cb.bias.set(in.bias);
        cb.running_mean.set(in.running_mean);
        cb.running_var.set(in.running_var);
        for (Buffer* p : {&cb.saved_mean, &cb.saved_invstd, &cb.weight_grad, &cb.bias_grad}) p->poison();
        return cb;
    }

    iabn::ChannelState state() {
        iabn::ChannelState s;
        if (has_weight) s.weight = weight.ref();
        if (has_bias) s.bias = bias.ref();
        s.running_mean = running_mean.ref();
        s.running_var = running_var.ref();
        s.saved_mean = saved_mean.ref();
        s.saved_invstd = saved_invstd.ref();
        return s;
    }
    iabn::ParamGrads grads() {
        iabn::ParamGrads g;
        if (has_grads) {
            g.weight_grad = weight_grad.ref();
            g.bias_grad = bias_grad.ref();
        }
        return g;
    }
};

// Why a device case cannot run here (no kernels for the device in the build, no driver, no
// device), or "" when it can: the test body then skips with it (GTEST_SKIP).
std::string device_skip_reason(const Case& c);

// Forward: in-place z, saved statistics, running statistics (or, with global statistics, that
// nothing but x was written). Uses EXPECT_*; call from a test body.
void check_forward(const Case& c);

// Backward with z = the reference forward of random x (stored in dtype), saved_invstd likewise:
// dx in place of dz, weight_grad, bias_grad; z and the per-channel inputs untouched.
void check_backward(const Case& c);

// Every activation x layout x rank x dtype x stats-mode, with weight/bias variants cycled through.
std::vector<Case> standard_cases();

struct CaseName {
    std::string operator()(const ::testing::TestParamInfo<Case>& info) const { return info.param.name(); }
};

}  // namespace iabn_test
