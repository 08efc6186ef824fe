// Bad input (docs/semantics.md, "Bad input"): every case throws iabn::Error, the message names the
// argument, and no buffer the caller passed (x, z, dz, every per-channel buffer, the gradients,
// and the spare buffers some cases substitute) changed by a single bit.
#include "test_util.h"

#include <iabn/iabn.h>

#include <cctype>
#include <functional>
#include <limits>
#include <sstream>

namespace iabn_test {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// `word` occurs in `msg` not as part of a longer identifier ("z" does not match inside "dz").
bool contains_word(const std::string& msg, const std::string& word) {
    auto ident = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
    for (size_t pos = msg.find(word); pos != std::string::npos; pos = msg.find(word, pos + 1)) {
        const bool before = pos == 0 || !ident(msg[pos - 1]);
        const bool after = pos + word.size() == msg.size() || !ident(msg[pos + word.size()]);
        if (before && after) return true;
    }
    return false;
}

// A valid f32 problem, x [4, 6, 5] nchw (C = 6, M = 20), with every buffer filled, plus the
// call arguments a case mutates.
struct World {
    static constexpr int64_t C = 6;
    const std::vector<int64_t> shape{4, C, 5};
    Buffer x{iabn::DType::f32, shape}, z{iabn::DType::f32, shape}, dz{iabn::DType::f32, shape};
    Buffer x64{iabn::DType::f64, shape}, dz64{iabn::DType::f64, shape};
    Buffer x16{iabn::DType::f16, shape}, dz16{iabn::DType::f16, shape}, dzbf16{iabn::DType::bf16, shape};
    Buffer f16_buf{iabn::DType::f16, {C}};
    Buffer overlap{iabn::DType::f32, {2 * 4 * C * 5}};  // room for partially overlapping z and dz
    Buffer weight{iabn::DType::f32, {C}}, bias{iabn::DType::f32, {C}}, running_mean{iabn::DType::f32, {C}},
        running_var{iabn::DType::f32, {C}}, saved_mean{iabn::DType::f32, {C}}, saved_invstd{iabn::DType::f32, {C}},
        weight_grad{iabn::DType::f32, {C}}, bias_grad{iabn::DType::f32, {C}};
    Buffer short_buf{iabn::DType::f32, {C - 1}}, long_buf{iabn::DType::f32, {C + 1}}, f64_buf{iabn::DType::f64, {C}},
        weight_zero5{iabn::DType::f32, {C}}, weight_subnormal5{iabn::DType::f32, {C}},
        small_channels{iabn::DType::f32, {C}}, spare{iabn::DType::f32, {4 * C * 5 + 2 * C}};

    iabn::TensorRef xr, zr, dzr;
    iabn::ChannelState st;
    iabn::ParamGrads gr;
    iabn::Options opt;  // defaults: training with batch statistics, identity, nchw

    explicit World(Rng& rng) {
        for (Buffer* b : {&x, &z, &dz, &x64, &dz64, &x16, &dz16, &dzbf16, &f16_buf, &overlap, &bias, &running_mean, &saved_mean, &weight_grad,
                          &bias_grad}) {
            for (int64_t i = 0; i < b->size(); i++) b->put(i, rng.normal());
        }
        for (Buffer* b : {&running_var, &saved_invstd, &short_buf, &long_buf, &f64_buf, &small_channels}) {
            for (int64_t i = 0; i < b->size(); i++) b->put(i, rng.uniform(0.5, 2.0));
        }
        for (int64_t i = 0; i < C; i++) {
            weight.put(i, rng.signed_uniform(0.5, 1.5));
            weight_zero5.put(i, i == 5 ? 0.0 : rng.signed_uniform(0.5, 1.5));
            // 1e-40 is subnormal in f32: its reciprocal overflows.
            weight_subnormal5.put(i, i == 5 ? -1e-40 : rng.signed_uniform(0.5, 1.5));
        }
        for (int64_t i = 0; i < spare.size(); i++) spare.put(i, rng.normal());
        xr = x.ref();
        zr = z.ref();
        dzr = dz.ref();
        st = {weight.ref(), bias.ref(), running_mean.ref(), running_var.ref(), saved_mean.ref(), saved_invstd.ref()};
        gr = {weight_grad.ref(), bias_grad.ref()};
    }

    std::vector<std::pair<const char*, Buffer*>> buffers() {
        return {{"x", &x},
                {"z", &z},
                {"dz", &dz},
                {"x64", &x64},
                {"dz64", &dz64},
                {"x16", &x16},
                {"dz16", &dz16},
                {"dzbf16", &dzbf16},
                {"f16_buf", &f16_buf},
                {"overlap", &overlap},
                {"weight", &weight},
                {"bias", &bias},
                {"running_mean", &running_mean},
                {"running_var", &running_var},
                {"saved_mean", &saved_mean},
                {"saved_invstd", &saved_invstd},
                {"weight_grad", &weight_grad},
                {"bias_grad", &bias_grad},
                {"short_buf", &short_buf},
                {"long_buf", &long_buf},
                {"f64_buf", &f64_buf},
                {"weight_zero5", &weight_zero5},
                {"weight_subnormal5", &weight_subnormal5},
                {"small_channels", &small_channels},
                {"spare", &spare}};
    }

    // For cases that change x's channel count: every per-channel argument gets length c (the
    // memory is large enough), so the only thing wrong is what the case means to test.
    void set_channels(int64_t c) {
        for (iabn::TensorRef* t : {&st.weight, &st.bias, &st.running_mean, &st.running_var, &st.saved_mean,
                                   &st.saved_invstd, &gr.weight_grad, &gr.bias_grad}) {
            t->shape = {c};
        }
    }

    iabn::TensorRef* channel_ref(const std::string& name) {
        if (name == "weight") return &st.weight;
        if (name == "bias") return &st.bias;
        if (name == "running_mean") return &st.running_mean;
        if (name == "running_var") return &st.running_var;
        if (name == "saved_mean") return &st.saved_mean;
        if (name == "saved_invstd") return &st.saved_invstd;
        if (name == "weight_grad") return &gr.weight_grad;
        if (name == "bias_grad") return &gr.bias_grad;
        throw std::logic_error("no per-channel buffer " + name);
    }
};

enum class Call { forward, backward };

struct BadCase {
    std::string name;
    Call call;
    std::function<void(World&)> mutate;
    std::vector<std::string> names;  // the message must name at least one of these
    std::string also;                // and contain this text, when given
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

std::string num_name(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "minus_inf";
    std::ostringstream out;
    out << v;  // shortest form: 1e-39, not 0.000000
    std::string s;
    for (char ch : out.str()) {
        if (ch == '.') s += 'p';
        else if (ch == '-') s += 'm';
        else if (ch != '+') s += ch;
    }
    return s;
}

std::vector<BadCase> bad_cases() {
    std::vector<BadCase> cs;
    const Call F = Call::forward, B = Call::backward;
    const std::vector<std::string> zdz = {"z", "dz"};

    // Rank outside 2..5.
    cs.push_back({"rank1_forward", F, [](World& w) { w.xr.shape = {120}; }, {"x"}, ""});
    cs.push_back({"rank6_forward", F, [](World& w) { w.xr.shape = {1, 4, 6, 5, 1, 1}; w.set_channels(4); }, {"x"}, ""});
    cs.push_back({"rank1_backward", B, [](World& w) { w.zr.shape = w.dzr.shape = {120}; }, zdz, ""});
    cs.push_back({"rank6_backward", B,
                  [](World& w) { w.zr.shape = w.dzr.shape = {1, 4, 6, 5, 1, 1}; w.set_channels(4); }, zdz, ""});

    // Null data pointers of required buffers.
    cs.push_back({"null_x_forward", F, [](World& w) { w.xr.data = nullptr; }, {"x"}, ""});
    cs.push_back({"null_z_backward", B, [](World& w) { w.zr.data = nullptr; }, {"z"}, ""});
    cs.push_back({"null_dz_backward", B, [](World& w) { w.dzr.data = nullptr; }, {"dz"}, ""});
    for (const char* n : {"running_mean", "running_var", "saved_mean", "saved_invstd"}) {
        const std::string name = n;
        cs.push_back({"null_" + name + "_training_forward", F, [name](World& w) { w.channel_ref(name)->data = nullptr; },
                      {name}, ""});
    }
    for (const char* n : {"running_mean", "running_var"}) {
        const std::string name = n;
        cs.push_back({"null_" + name + "_eval_forward", F,
                      [name](World& w) {
                          w.opt.training = false;
                          w.channel_ref(name)->data = nullptr;
                      },
                      {name}, ""});
        cs.push_back({"null_" + name + "_use_global_stats_forward", F,
                      [name](World& w) {
                          w.opt.use_global_stats = true;
                          w.channel_ref(name)->data = nullptr;
                      },
                      {name}, ""});
    }
    cs.push_back({"null_saved_invstd_training_backward", B, [](World& w) { w.st.saved_invstd.data = nullptr; },
                  {"saved_invstd"}, ""});
    cs.push_back({"null_running_var_global_backward", B,
                  [](World& w) {
                      w.opt.training = false;
                      w.st.running_var.data = nullptr;
                  },
                  {"running_var"}, ""});
    cs.push_back({"null_running_var_use_global_stats_backward", B,
                  [](World& w) {
                      w.opt.use_global_stats = true;
                      w.st.running_var.data = nullptr;
                  },
                  {"running_var"}, ""});

    // Per-channel buffers of the wrong length or dtype, each buffer in a call that reads/writes it.
    struct Use {
        const char* name;
        Call call;
        bool global;
    };
    const Use uses[] = {{"weight", F, false},       {"bias", F, false},         {"running_mean", F, false},
                        {"running_var", F, false},  {"saved_mean", F, false},   {"saved_invstd", F, false},
                        {"running_mean", F, true},  {"running_var", F, true},   {"weight", B, false},
                        {"bias", B, false},         {"saved_invstd", B, false}, {"running_var", B, true},
                        {"weight_grad", B, false},  {"bias_grad", B, false}};
    for (const Use& u : uses) {
        const std::string name = u.name;
        const bool global = u.global;
        const std::string suffix = std::string(u.call == F ? "_forward" : "_backward") + (global ? "_global" : "");
        cs.push_back({"short_" + name + suffix, u.call,
                      [name, global](World& w) {
                          w.opt.training = !global;
                          *w.channel_ref(name) = w.short_buf.ref();
                      },
                      {name}, ""});
        cs.push_back({"long_" + name + suffix, u.call,
                      [name, global](World& w) {
                          w.opt.training = !global;
                          *w.channel_ref(name) = w.long_buf.ref();
                      },
                      {name}, ""});
        cs.push_back({"rank2_" + name + suffix, u.call,
                      [name, global](World& w) {
                          w.opt.training = !global;
                          *w.channel_ref(name) = w.small_channels.ref();
                          w.channel_ref(name)->shape = {1, World::C};  // right count, not [C]
                      },
                      {name}, ""});
        cs.push_back({"f64_" + name + suffix, u.call,
                      [name, global](World& w) {
                          w.opt.training = !global;
                          *w.channel_ref(name) = w.f64_buf.ref();
                      },
                      {name}, ""});
    }

    // activation_param <= 0 or non-finite (0 for leaky_relu is a relu request), for every
    // activation that takes it: all but identity.
    for (iabn::Activation act : iabn::kActivations) {
        if (act == iabn::Activation::identity) continue;
        for (double v : {0.0, -0.5, kNaN, kInf, -kInf}) {
            for (Call call : {F, B}) {
                cs.push_back({std::string(iabn::to_string(act)) + "_param_" +
                                  num_name(v) + (call == F ? "_forward" : "_backward"),
                              call,
                              [act, v](World& w) {
                                  w.opt.activation = act;
                                  w.opt.activation_param = v;
                              },
                              {"activation_param"}, ""});
            }
        }
    }
    // epsilon < 0, non-finite, 0 (a constant channel would get invstd = inf and z = NaN), below
    // the smallest normal f32 (1/sqrt(epsilon) would overflow), or beyond the f32 range.
    for (double v : {-1e-5, kNaN, kInf, 0.0, 1e-39, 1e-300, 1e39}) {
        for (Call call : {F, B}) {
            cs.push_back({"epsilon_" + num_name(v) + (call == F ? "_forward" : "_backward"), call,
                          [v](World& w) { w.opt.epsilon = v; }, {"epsilon"}, ""});
        }
    }
    // momentum outside [0, 1].
    for (double v : {-0.1, 1.5, kNaN}) {
        cs.push_back({"momentum_" + num_name(v) + "_forward", F, [v](World& w) { w.opt.momentum = v; }, {"momentum"}, ""});
    }
    // Batch statistics with fewer than 2 elements per channel.
    cs.push_back({"batch_stats_M1_shape_1x3", F, [](World& w) { w.xr.shape = {1, 3}; w.set_channels(3); }, {"x"}, ""});
    cs.push_back({"batch_stats_M1_shape_1x4x1x1", F,
                  [](World& w) { w.xr.shape = {1, 4, 1, 1}; w.set_channels(4); }, {"x"}, ""});
    cs.push_back({"batch_stats_M1_shape_1x1x1x5_nhwc", F,
                  [](World& w) {
                      w.opt.layout = iabn::Layout::nhwc;
                      w.xr.shape = {1, 1, 1, 5};
                      w.set_channels(5);
                  },
                  {"x"}, ""});
    // z and dz alias.
    cs.push_back({"alias_same_pointer", B, [](World& w) { w.dzr.data = w.zr.data; }, zdz, ""});
    cs.push_back({"alias_dz_overlaps_end_of_z", B,
                  [](World& w) {
                      w.zr.data = w.overlap.raw();
                      w.dzr.data = w.overlap.raw() + 60 * sizeof(float);
                  },
                  zdz, ""});
    cs.push_back({"alias_z_overlaps_end_of_dz", B,
                  [](World& w) {
                      w.dzr.data = w.overlap.raw();
                      w.zr.data = w.overlap.raw() + 60 * sizeof(float);
                  },
                  zdz, ""});
    cs.push_back({"alias_one_element_overlap", B,
                  [](World& w) {
                      w.zr.data = w.overlap.raw();
                      w.dzr.data = w.overlap.raw() + 119 * sizeof(float);
                  },
                  zdz, ""});
    // g == 0 for a channel in backward: the message names the channel.
    cs.push_back({"zero_weight_channel5_backward", B, [](World& w) { w.st.weight = w.weight_zero5.ref(); },
                  {"weight"}, "channel 5"});
    cs.push_back({"zero_weight_channel5_global_backward", B,
                  [](World& w) {
                      w.opt.training = false;
                      w.st.weight = w.weight_zero5.ref();
                  },
                  {"weight"}, "channel 5"});
    cs.push_back({"subnormal_weight_channel5_backward", B, [](World& w) { w.st.weight = w.weight_subnormal5.ref(); },
                  {"weight"}, "channel 5"});
    cs.push_back({"subnormal_weight_channel5_global_backward", B,
                  [](World& w) {
                      w.opt.use_global_stats = true;
                      w.st.weight = w.weight_subnormal5.ref();
                  },
                  {"weight"}, "channel 5"});
    // With global statistics a negative or NaN running variance would give NaN (sqrt of < 0).
    for (double v : {-0.5, kNaN}) {
        for (Call call : {F, B}) {
            cs.push_back({"running_var_" + num_name(v) + "_channel2_global" + (call == F ? "_forward" : "_backward"),
                          call,
                          [v](World& w) {
                              w.opt.training = false;
                              w.running_var.put(2, v);
                          },
                          {"running_var"}, "channel 2"});
        }
    }
    // dtype mismatch between the tensor and the per-channel buffers.
    cs.push_back({"f64_x_with_f32_channels_forward", F, [](World& w) { w.xr = w.x64.ref(); },
                  {"x", "weight", "bias", "running_mean", "running_var", "saved_mean", "saved_invstd"}, ""});
    cs.push_back({"f64_z_dz_with_f32_channels_backward", B,
                  [](World& w) {
                      w.zr = w.x64.ref();
                      w.dzr = w.dz64.ref();
                  },
                  {"z", "dz", "weight", "bias", "saved_invstd", "weight_grad", "bias_grad"}, ""});
    cs.push_back({"dtype_mismatch_z_f32_dz_f64", B, [](World& w) { w.dzr = w.dz64.ref(); }, zdz, ""});
    // 16-bit tensors take f32 per-channel buffers (as PyTorch's mixed precision keeps them).
    cs.push_back({"f16_x_with_f16_weight_forward", F,
                  [](World& w) {
                      w.xr = w.x16.ref();
                      w.st.weight = w.f16_buf.ref();
                  },
                  {"weight"}, "f32"});
    cs.push_back({"f16_x_with_f64_running_var_forward", F,
                  [](World& w) {
                      w.xr = w.x16.ref();
                      w.st.running_var = w.f64_buf.ref();
                  },
                  {"running_var"}, "f32"});
    cs.push_back({"f16_z_dz_with_f16_bias_grad_backward", B,
                  [](World& w) {
                      w.zr = w.x16.ref();
                      w.dzr = w.dz16.ref();
                      w.gr.bias_grad = w.f16_buf.ref();
                  },
                  {"bias_grad"}, "f32"});
    cs.push_back({"dtype_mismatch_z_f16_dz_bf16", B,
                  [](World& w) {
                      w.zr = w.x16.ref();
                      w.dzr = w.dzbf16.ref();
                  },
                  zdz, "f16"});
    // Shape mismatch between z and dz.
    cs.push_back({"shape_mismatch_dz_smaller", B, [](World& w) { w.dzr.shape = {4, World::C, 4}; }, zdz, ""});
    cs.push_back({"shape_mismatch_same_numel", B, [](World& w) { w.dzr.shape = {2, World::C, 10}; }, zdz, ""});
    // Zero-size dimensions.
    cs.push_back({"zero_size_batch_forward", F, [](World& w) { w.xr.shape = {0, World::C, 5}; }, {"x"}, ""});
    cs.push_back({"zero_size_spatial_forward", F, [](World& w) { w.xr.shape = {4, World::C, 0}; }, {"x"}, ""});
    cs.push_back({"zero_size_global_forward", F,
                  [](World& w) {
                      w.opt.training = false;
                      w.xr.shape = {4, World::C, 0};
                  },
                  {"x"}, ""});
    cs.push_back({"zero_size_backward", B, [](World& w) { w.zr.shape = w.dzr.shape = {4, World::C, 0}; }, zdz, ""});
    // Shapes whose element count or byte size overflows 64 bits, or whose view extents reach
    // 2^31: refused by checked arithmetic, before anything is read (the buffers are small).
    const int64_t big = int64_t{1} << 32;
    cs.push_back({"huge_shape_numel_wraps_to_zero", F, [big](World& w) { w.xr.shape = {big, big, 2}; w.set_channels(big); },
                  {"x"}, "2^63"});
    cs.push_back({"huge_shape_numel_wraps_to_small", F,
                  [](World& w) {
                      w.xr.shape = {int64_t{1} << 33, 2, int64_t{1} << 31};
                      w.set_channels(2);
                  },
                  {"x"}, "2^63"});
    cs.push_back({"huge_shape_int64_max_dims", F,
                  [](World& w) {
                      const int64_t m = std::numeric_limits<int64_t>::max();
                      w.xr.shape = {m, World::C, m};
                  },
                  {"x"}, "2^63"});
    cs.push_back({"huge_shape_bytes_overflow_backward", B,
                  [](World& w) { w.zr.shape = w.dzr.shape = {int64_t{1} << 31, World::C, int64_t{1} << 30}; },
                  zdz, "2^63"});
    cs.push_back({"view_extent_2pow31_forward", F,
                  [](World& w) {
                      w.xr.shape = {1, 2, int64_t{1} << 31};
                      w.set_channels(2);
                  },
                  {"x"}, "2^31"});
    // Data pointers that are not a multiple of the element size.
    cs.push_back({"misaligned_x_forward", F, [](World& w) { w.xr.data = w.spare.raw() + 2; }, {"x"}, "aligned"});
    cs.push_back({"misaligned_dz_backward", B, [](World& w) { w.dzr.data = w.spare.raw() + 1; }, {"dz"}, "aligned"});
    cs.push_back({"misaligned_running_mean_forward", F, [](World& w) { w.st.running_mean.data = w.spare.raw() + 3; },
                  {"running_mean"}, "aligned"});
    cs.push_back({"misaligned_weight_grad_backward", B, [](World& w) { w.gr.weight_grad.data = w.spare.raw() + 2; },
                  {"weight_grad"}, "aligned"});
    // A buffer the call writes overlapping another buffer of the call.
    cs.push_back({"overlap_saved_mean_is_running_mean", F,
                  [](World& w) { w.st.saved_mean.data = w.st.running_mean.data; }, {"saved_mean", "running_mean"},
                  "overlap"});
    cs.push_back({"overlap_running_var_inside_x", F,
                  [](World& w) {
                      w.xr.data = w.spare.raw();
                      w.st.running_var.data = w.spare.raw() + 7 * sizeof(float);
                  },
                  {"x", "running_var"}, "overlap"});
    cs.push_back({"overlap_saved_invstd_straddles_end_of_x", F,
                  [](World& w) {
                      w.xr.data = w.spare.raw();
                      w.st.saved_invstd.data = w.spare.raw() + (4 * World::C * 5 - 1) * sizeof(float);
                  },
                  {"x", "saved_invstd"}, "overlap"});
    cs.push_back({"overlap_running_mean_reads_weight", F, [](World& w) { w.st.running_mean.data = w.st.weight.data; },
                  {"running_mean", "weight"}, "overlap"});
    cs.push_back({"overlap_weight_grad_is_bias_grad", B,
                  [](World& w) { w.gr.weight_grad.data = w.gr.bias_grad.data; }, {"weight_grad", "bias_grad"},
                  "overlap"});
    cs.push_back({"overlap_bias_grad_inside_dz", B,
                  [](World& w) {
                      w.dzr.data = w.spare.raw();
                      w.gr.bias_grad.data = w.spare.raw() + 10 * sizeof(float);
                  },
                  {"dz", "bias_grad"}, "overlap"});
    cs.push_back({"overlap_weight_grad_inside_z", B,
                  [](World& w) {
                      w.zr.data = w.spare.raw();
                      w.gr.weight_grad.data = w.spare.raw() + 3 * sizeof(float);
                  },
                  {"z", "weight_grad"}, "overlap"});
    cs.push_back({"overlap_bias_grad_is_saved_invstd", B,
                  [](World& w) { w.gr.bias_grad.data = w.st.saved_invstd.data; }, {"bias_grad", "saved_invstd"},
                  "overlap"});
    // One buffer marked Device::cuda among host ones: with CUDA kernels built, buffers on two
    // devices (the message names the first that differs from the tensor); without, no CUDA kernels.
    // Either way nothing is read through the (host) pointers as device memory.
    cs.push_back({"cuda_x_forward", F, [](World& w) { w.xr.device = iabn::Device::cuda; }, {"x", "weight"}, "Device::"});
    cs.push_back({"cuda_running_var_forward", F, [](World& w) { w.st.running_var.device = iabn::Device::cuda; },
                  {"running_var"}, "Device::"});
    cs.push_back({"cuda_z_backward", B, [](World& w) { w.zr.device = iabn::Device::cuda; }, {"z", "dz"}, "Device::"});
    cs.push_back({"cuda_dz_backward", B, [](World& w) { w.dzr.device = iabn::Device::cuda; }, {"dz"}, "Device::"});
    cs.push_back({"cuda_weight_grad_backward", B, [](World& w) { w.gr.weight_grad.device = iabn::Device::cuda; },
                  {"weight_grad"}, "Device::"});
    cs.push_back({"bad_device_forward", F, [](World& w) { w.xr.device = static_cast<iabn::Device>(7); }, {"x"},
                  "Device::cpu, Device::cuda or Device::opencl"});
    return cs;
}

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, ThrowsNamesArgumentWritesNothing) {
    IABN_TRACE_SEED();
    const BadCase& c = GetParam();
    Rng rng;
    World w(rng);
    c.mutate(w);
    std::vector<Bytes> before;
    for (auto& b : w.buffers()) before.push_back(b.second->snapshot());

    bool threw = false;
    std::string msg;
    try {
        if (c.call == Call::forward) {
            iabn::forward(w.xr, w.st, w.opt);
        } else {
            iabn::backward(w.zr, w.dzr, w.st, w.gr, w.opt);
        }
    } catch (const iabn::Error& e) {
        threw = true;
        msg = e.what();
        EXPECT_NE(dynamic_cast<const iabn::InvalidArgument*>(&e), nullptr)
            << "a refused argument is an iabn::InvalidArgument: " << msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw an exception that is not iabn::Error: " << e.what();
    }
    EXPECT_TRUE(threw) << "no iabn::Error for " << c.name;
    if (threw) {
        bool named = false;
        std::string expected;
        for (const std::string& n : c.names) {
            named = named || contains_word(msg, n);
            expected += (expected.empty() ? "" : " or ") + n;
        }
        EXPECT_TRUE(named) << "message does not name " << expected << ": \"" << msg << "\"";
        if (!c.also.empty()) {
            EXPECT_NE(msg.find(c.also), std::string::npos) << "message lacks \"" << c.also << "\": \"" << msg << "\"";
        }
    }
    const auto bufs = w.buffers();
    for (size_t i = 0; i < bufs.size(); i++) {
        EXPECT_TRUE(bufs[i].second->same_bytes(before[i])) << bufs[i].first << " was written despite the error";
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, BadInput, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& i) { return i.param.name; });

// The World itself is valid: without a mutation both calls succeed (so every failure above is
// caused by the one thing its case changed). Also optional weight, bias and grads may be empty.
TEST(BadInputControl, UnmodifiedSetupIsAccepted) {
    IABN_TRACE_SEED();
    Rng rng;
    World w(rng);
    EXPECT_NO_THROW(iabn::forward(w.xr, w.st, w.opt));
    EXPECT_NO_THROW(iabn::backward(w.zr, w.dzr, w.st, w.gr, w.opt));
    World v(rng);
    v.st.weight = {};
    v.st.bias = {};
    v.gr = {};
    EXPECT_NO_THROW(iabn::forward(v.xr, v.st, v.opt));
    EXPECT_NO_THROW(iabn::backward(v.zr, v.dzr, v.st, v.gr, v.opt));
    World g(rng);  // global statistics need no saved_* at all
    g.opt.training = false;
    g.st.saved_mean = {};
    g.st.saved_invstd = {};
    EXPECT_NO_THROW(iabn::forward(g.xr, g.st, g.opt));
    EXPECT_NO_THROW(iabn::backward(g.zr, g.dzr, g.st, g.gr, g.opt));
}

// Buffers that are only read may share memory, and a global-statistics forward ignores saved_*.
TEST(BadInputControl, OverlapsOfBuffersNotWrittenAreAccepted) {
    IABN_TRACE_SEED();
    Rng rng;
    World w(rng);
    w.st.bias = w.st.weight;  // read-only in both calls
    EXPECT_NO_THROW(iabn::forward(w.xr, w.st, w.opt));
    EXPECT_NO_THROW(iabn::backward(w.zr, w.dzr, w.st, w.gr, w.opt));
    World g(rng);
    g.opt.training = false;
    g.st.saved_mean = g.st.saved_invstd = g.st.running_mean;  // not used with global statistics
    g.st.running_var.data = g.st.running_mean.data;            // both only read
    for (int64_t i = 0; i < World::C; i++) g.running_mean.put(i, 1.0);
    EXPECT_NO_THROW(iabn::forward(g.xr, g.st, g.opt));
}

// The smallest epsilon accepted, and the smallest normal weight.
TEST(BadInputControl, SmallestNormalEpsilonAndScaleAreAccepted) {
    IABN_TRACE_SEED();
    Rng rng;
    World w(rng);
    w.opt.epsilon = std::numeric_limits<float>::min();
    w.weight.put(3, -static_cast<double>(std::numeric_limits<float>::min()));
    EXPECT_NO_THROW(iabn::forward(w.xr, w.st, w.opt));
    EXPECT_NO_THROW(iabn::backward(w.zr, w.dzr, w.st, w.gr, w.opt));
}

TEST(BadInputControl, ModeratelyNegativeWeightIsAcceptedWithoutAbsWeight) {
    // A negative plain weight is a valid scale (only g == 0 is rejected).
    IABN_TRACE_SEED();
    Rng rng;
    World w(rng);
    for (int64_t i = 0; i < World::C; i++) w.weight.put(i, -1.0);
    EXPECT_NO_THROW(iabn::backward(w.zr, w.dzr, w.st, w.gr, w.opt));
}

TEST(BadInputActivation, ParseRejectsRelu) {
    try {
        iabn::parse_activation("relu");
        ADD_FAILURE() << "parse_activation(\"relu\") did not throw";
    } catch (const iabn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("relu"), std::string::npos) << e.what();
    }
    EXPECT_THROW(iabn::parse_activation("gelu"), iabn::Error);
}

TEST(BadInputActivation, ParseAcceptsPaddleNames) {
    EXPECT_EQ(iabn::parse_activation("identity"), iabn::Activation::identity);
    EXPECT_EQ(iabn::parse_activation(""), iabn::Activation::identity);
    EXPECT_EQ(iabn::parse_activation("leaky_relu"), iabn::Activation::leaky_relu);
    EXPECT_EQ(iabn::parse_activation("elu"), iabn::Activation::elu);
    for (iabn::Activation a : iabn::kActivations) {
        EXPECT_EQ(iabn::parse_activation(iabn::to_string(a)), a);
    }
}

TEST(BadInputThreads, SetNumThreadsRejectsNonPositive) {
    EXPECT_THROW(iabn::set_num_threads(0), iabn::Error);
    EXPECT_THROW(iabn::set_num_threads(-2), iabn::Error);
    EXPECT_NO_THROW(iabn::set_num_threads(1));
}

}  // namespace
}  // namespace iabn_test
