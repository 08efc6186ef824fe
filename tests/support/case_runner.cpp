#include "case_runner.h"

#include "compare.h"
#include "device_mirror.h"

#include <cmath>
#include <sstream>

namespace iabn_test {

iabn::Options Case::options() const {
    iabn::Options o;
    o.activation = act;
    o.activation_param = param;
    o.layout = layout;
    o.training = stats != Stats::global_eval;
    o.use_global_stats = stats == Stats::global_train;
    o.unbiased_running_var = unbiased;
    o.abs_weight = abs_weight;
    o.momentum = 0.9;
    o.epsilon = 1e-5;
    if (TestDevice* d = test_device(device)) d->set_queue(o, queue);
    return o;
}

std::string act_name(iabn::Activation act, double param) {
    std::ostringstream out;
    switch (act) {
        case iabn::Activation::identity: return "identity";
        case iabn::Activation::leaky_relu: out << "leaky" << param; break;
        case iabn::Activation::elu: out << "elu" << param; break;
    }
    std::string s = out.str();
    for (char& ch : s) {
        if (ch == '.') ch = 'p';
        if (ch == '-') ch = 'm';
    }
    return s;
}

std::string Case::name() const {
    std::ostringstream out;
    if (device == iabn::Device::cuda) out << "cuda_";
    if (device == iabn::Device::opencl) out << "opencl_";
    out << iabn::to_string(dtype) << "_" << (layout == iabn::Layout::nchw ? "nchw" : "nhwc");
    for (int64_t d : shape) out << "_" << d;
    out << "_" << act_name(act, param);
    out << (stats == Stats::batch ? "_batch" : stats == Stats::global_eval ? "_global_eval" : "_global_train");
    if (!weight) out << "_noweight";
    if (!bias) out << "_nobias";
    if (abs_weight) out << "_absweight";
    if (unbiased) out << "_unbiased";
    if (!grads) out << "_nograds";
    return out.str();
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name(); }

std::vector<double> round_to(iabn::DType dtype, std::vector<double> v) {
    if (dtype == iabn::DType::f32) {
        for (double& x : v) x = static_cast<double>(static_cast<float>(x));
    } else if (dtype != iabn::DType::f64) {
        for (double& x : v) x = round_to_half(half_format(dtype), x);
    }
    return v;
}

Inputs make_inputs(const Case& c, Rng& rng) {
    Inputs in;
    in.channels = ref::num_channels(c.shape, c.layout);
    in.per_channel = ref::per_channel(c.shape, c.layout);
    const int64_t C = in.channels;
    const int64_t n = numel(c.shape);
    const iabn::DType cd = channel_dtype(c.dtype);

    in.data_mean.resize(static_cast<size_t>(C));
    in.data_std.resize(static_cast<size_t>(C));
    for (int64_t k = 0; k < C; k++) {
        in.data_mean[static_cast<size_t>(k)] = rng.uniform(-2.0, 2.0);
        in.data_std[static_cast<size_t>(k)] = rng.uniform(0.5, 2.0);
    }
    in.x.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        const size_t k = static_cast<size_t>(ref::channel_of(i, c.shape, c.layout));
        in.x[static_cast<size_t>(i)] = in.data_mean[k] + in.data_std[k] * rng.normal();
    }
    in.x = round_to(c.dtype, in.x);

    std::vector<double> w(static_cast<size_t>(C)), b(static_cast<size_t>(C)), rm(static_cast<size_t>(C)),
        rv(static_cast<size_t>(C));
    const bool global = c.stats != Stats::batch;
    for (int64_t k = 0; k < C; k++) {
        const size_t j = static_cast<size_t>(k);
        w[j] = rng.signed_uniform(0.5, 1.5);
        b[j] = rng.uniform(-1.0, 1.0);
        if (global) {
            rm[j] = in.data_mean[j] + rng.uniform(-0.3, 0.3) * in.data_std[j];
            rv[j] = in.data_std[j] * in.data_std[j] * rng.uniform(0.7, 1.4);
        } else {
            rm[j] = rng.uniform(-1.0, 1.0);
            rv[j] = rng.uniform(0.5, 2.0);
        }
    }
    if (c.abs_weight) {
        w[0] = -std::fabs(w[0]);  // the sign rule of weight_grad must be exercised
        if (C > 1) w[1] = std::fabs(w[1]);
    }
    if (c.weight) in.weight = round_to(cd, w);
    if (c.bias) in.bias = round_to(cd, b);
    in.running_mean = round_to(cd, rm);
    in.running_var = round_to(cd, rv);
    return in;
}

std::vector<double> make_dz(const Case& c, const Inputs& in, Rng& rng) {
    const int64_t C = in.channels;
    std::vector<double> m(static_cast<size_t>(C)), beta(static_cast<size_t>(C));
    for (int64_t k = 0; k < C; k++) {
        m[static_cast<size_t>(k)] = rng.signed_uniform(0.5, 1.5);
        beta[static_cast<size_t>(k)] = rng.signed_uniform(0.5, 1.5);
    }
    std::vector<double> dz(in.x.size());
    for (size_t i = 0; i < dz.size(); i++) {
        const size_t k = static_cast<size_t>(ref::channel_of(static_cast<int64_t>(i), c.shape, c.layout));
        const double xhat = (in.x[i] - in.data_mean[k]) / in.data_std[k];
        dz[i] = m[k] + beta[k] * xhat + rng.normal();
    }
    return round_to(c.dtype, dz);
}


std::string device_skip_reason(const Case& c) {
    return c.device == iabn::Device::cpu || test_device(c.device) ? "" : device_unavailable(c.device);
}

void check_forward(const Case& c) {
    SCOPED_TRACE("case " + c.name());
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const bool batch = ref::uses_batch_stats(o);
    const ForwardTolerances tol{tolerance(c.dtype), channel_tolerance(c.dtype), channel_tolerance(c.dtype)};
    const iabn::DType cd = channel_dtype(c.dtype);

    Buffer x(c.dtype, c.shape);
    x.set(in.x);
    ChannelBuffers cb(cd, in.channels, c.weight, c.bias, false);
    if (c.weight) cb.weight.set(in.weight);
    if (c.bias) cb.bias.set(in.bias);
    cb.running_mean.set(in.running_mean);
    cb.running_var.set(in.running_var);
    cb.saved_mean.poison();
    cb.saved_invstd.poison();
    const Bytes w0 = cb.weight.snapshot(), b0 = cb.bias.snapshot(), rm0 = cb.running_mean.snapshot(),
                rv0 = cb.running_var.snapshot(), sm0 = cb.saved_mean.snapshot(), si0 = cb.saved_invstd.snapshot();

    const ref::ForwardResult r = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);

    {
        DeviceMirror on(c.device, c.queue);  // a device case runs on device copies, read back here
        ASSERT_NO_THROW(iabn::forward(x.ref(), cb.state(), o));
        on.download();
    }

    // In place: the caller's x buffer now holds z.
    ForwardOutputs got;
    got.z = x.get();
    if (batch) {
        got.saved_mean = cb.saved_mean.get();
        got.saved_invstd = cb.saved_invstd.get();
        got.running_mean = cb.running_mean.get();
        got.running_var = cb.running_var.get();
    }
    for (const Mismatch& m : compare_forward(got, r, batch, tol)) {
        ADD_FAILURE() << m.what << (batch ? (c.unbiased ? " (unbiased)" : " (biased)") : "") << ": error " << m.error
                      << " > tolerance " << m.tolerance;
    }
    EXPECT_TRUE(cb.weight.same_bytes(w0)) << "forward wrote weight";
    EXPECT_TRUE(cb.bias.same_bytes(b0)) << "forward wrote bias";
    if (!batch) {
        // Global statistics: nothing is updated, saved_* are not written (still the NaN poison).
        EXPECT_TRUE(cb.running_mean.same_bytes(rm0)) << "global-stats forward changed running_mean";
        EXPECT_TRUE(cb.running_var.same_bytes(rv0)) << "global-stats forward changed running_var";
        EXPECT_TRUE(cb.saved_mean.same_bytes(sm0)) << "global-stats forward wrote saved_mean";
        EXPECT_TRUE(cb.saved_invstd.same_bytes(si0)) << "global-stats forward wrote saved_invstd";
    }
}

void check_backward(const Case& c) {
    SCOPED_TRACE("case " + c.name());
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    const bool batch = ref::uses_batch_stats(o);
    const BackwardTolerances tol(tolerance(c.dtype), channel_tolerance(c.dtype));
    const iabn::DType cd = channel_dtype(c.dtype);

    // z and saved_invstd come from the reference forward, stored in the case's dtypes; the kernel
    // and the reference backward both read exactly these stored values.
    const ref::ForwardResult f = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    Buffer z(c.dtype, c.shape), dz(c.dtype, c.shape);
    const std::vector<double> z_stored = z.set(f.z);
    const std::vector<double> dz_stored = dz.set(make_dz(c, in, rng));

    ChannelBuffers cb(cd, in.channels, c.weight, c.bias, c.grads);
    if (c.weight) cb.weight.set(in.weight);
    if (c.bias) cb.bias.set(in.bias);
    std::vector<double> si_stored, rv_stored;
    if (batch) {
        si_stored = cb.saved_invstd.set(f.saved_invstd);
        // Buffers the batch-stat backward must not read: NaN would leak into dx or the grads.
        cb.running_var.poison();
        cb.running_mean.poison();
        cb.saved_mean.poison();
    } else {
        rv_stored = cb.running_var.set(in.running_var);
        cb.running_mean.set(in.running_mean);
        cb.saved_invstd.poison();  // must not be read with global statistics
        cb.saved_mean.poison();
    }
    cb.weight_grad.poison();
    cb.bias_grad.poison();
    const Bytes z0 = z.snapshot(), w0 = cb.weight.snapshot(), b0 = cb.bias.snapshot(),
                rm0 = cb.running_mean.snapshot(), rv0 = cb.running_var.snapshot(),
                sm0 = cb.saved_mean.snapshot(), si0 = cb.saved_invstd.snapshot(),
                wg0 = cb.weight_grad.snapshot(), bg0 = cb.bias_grad.snapshot();

    const ref::BackwardResult r =
        ref::backward(z_stored, dz_stored, c.shape, in.weight, in.bias, si_stored, rv_stored, o);

    {
        DeviceMirror on(c.device, c.queue);
        ASSERT_NO_THROW(iabn::backward(z.ref(), dz.ref(), cb.state(), cb.grads(), o));
        on.download();
    }

    // In place: the dz buffer now holds dx. Floor at 0.1 of the operand magnitudes
    // (error_measures.h); dx has no NaN/inf element.
    BackwardOutputs got;
    got.dx = dz.get();
    got.grads = c.grads;
    if (c.grads) {
        got.weight_grad = cb.weight_grad.get();
        got.bias_grad = cb.bias_grad.get();
    }
    // ELU elements saturated in the stored z (z/a <= -1: their pre-activation is lost) have no
    // reference dx with batch statistics; every element must still be finite. (Rare in f32,
    // common in 16 bits, where z rounds to -a from y < ln(2^-11) (f16) or ln(2^-8) (bf16).)
    BackwardFloors floors;
    if (batch) floors.skip = &r.saturated;
    for (const Mismatch& m : compare_backward(got, r, tol, floors)) {
        ADD_FAILURE() << m.what << (c.abs_weight ? " (abs_weight: weight_grad's sign flips where weight < 0)" : "")
                      << ": error " << m.error << " > tolerance " << m.tolerance;
    }
    if (!c.grads) {
        EXPECT_TRUE(cb.weight_grad.same_bytes(wg0));
        EXPECT_TRUE(cb.bias_grad.same_bytes(bg0));
    }
    EXPECT_TRUE(z.same_bytes(z0)) << "backward wrote z (it is read-only)";
    EXPECT_TRUE(cb.weight.same_bytes(w0)) << "backward wrote weight";
    EXPECT_TRUE(cb.bias.same_bytes(b0)) << "backward wrote bias";
    EXPECT_TRUE(cb.running_mean.same_bytes(rm0)) << "backward wrote running_mean";
    EXPECT_TRUE(cb.running_var.same_bytes(rv0)) << "backward wrote running_var";
    EXPECT_TRUE(cb.saved_mean.same_bytes(sm0)) << "backward wrote saved_mean";
    EXPECT_TRUE(cb.saved_invstd.same_bytes(si0)) << "backward wrote saved_invstd";
}

std::vector<Case> standard_cases() {
    struct Act {
        iabn::Activation act;
        double param;
    };
    const Act acts[] = {{iabn::Activation::identity, 1.0},
                        {iabn::Activation::leaky_relu, 0.01},
                        {iabn::Activation::leaky_relu, 0.3},
                        {iabn::Activation::elu, 1.0},
                        {iabn::Activation::elu, 0.5}};
    // A few thousand elements each; odd extents so no dim is a multiple of a vector width.
    const std::vector<std::vector<int64_t>> nchw = {{600, 7}, {6, 5, 97}, {3, 6, 11, 13}, {2, 4, 5, 7, 9}};
    const std::vector<std::vector<int64_t>> nhwc = {{600, 7}, {6, 97, 5}, {3, 11, 13, 6}, {2, 5, 7, 9, 4}};
    std::vector<Case> cases;
    int index = 0, global_index = 0;
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
        for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (size_t r = 0; r < 4; r++) {
                for (const Act& a : acts) {
                    for (bool global : {false, true}) {
                        Case c;
                        c.dtype = dt;
                        c.layout = lay;
                        c.shape = lay == iabn::Layout::nchw ? nchw[r] : nhwc[r];
                        c.act = a.act;
                        c.param = a.param;
                        c.stats = !global ? Stats::batch
                                          : (global_index++ % 2 == 0 ? Stats::global_eval : Stats::global_train);
                        // Seven variants; 7 is coprime with every loop extent, so each variant
                        // meets every activation, layout, rank, dtype and stats mode.
                        switch (index++ % 7) {
                            case 0: break;
                            case 1: c.unbiased = true; break;
                            case 2: c.abs_weight = true; c.unbiased = true; break;
                            case 3: c.weight = false; break;
                            case 4: c.bias = false; break;
                            case 5: c.weight = false; c.bias = false; c.abs_weight = true; break;
                            case 6: c.grads = false; c.abs_weight = true; break;
                        }
                        cases.push_back(c);
                    }
                }
            }
        }
    }
    return cases;
}

}  // namespace iabn_test
