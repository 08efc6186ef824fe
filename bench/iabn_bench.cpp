// iabn-bench: times iabn's passes against the memory-bandwidth floor and against oneDNN, measured
// in the same process and run, on the same data, with the same thread count, interleaved so that
// the noise of a shared machine hits all of them alike. Reports medians as a table, a JSON file
// and a chart (README.md here says what is measured and how).
//
//   iabn-bench [--threads 2] [--repeats 11] [--quick] [--dtypes f32,f16,bf16,f64] [--f32-only]
//              [--no-onednn] [--shape NAME|DIMS]... [--layout nchw|nhwc]
//              [--network resnet50|deeplabv3|all] [--pytorch PYTHON | --no-pytorch]
//              [--json iabn-bench.json] [--png iabn-bench.png]
//
// Floors (docs/DESIGN.md, "Performance model"), in passes over the tensor:
//   forward (training):          nchw 2 (read x, write z); channels-last 3 (+ a read for the statistics)
//   forward (global statistics): 2
//   backward (training):         nchw 3 (read z and dz, write dx); channels-last 5 (+ reads of z and dz)
// A pass moves the tensor's own bytes: 16-bit rows move half the bytes of f32 rows.
#include "floor.h"
#include "networks.h"
#include "onednn.h"
#include "pytorch.h"
#include "report.h"
#include "timing.h"

#include <iabn/iabn.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <map>
#include <type_traits>
#include <vector>

namespace {

using bench::Row;

struct Shape {
    std::string name;
    std::vector<int64_t> nchw;  // logical [N, C, ...]; the nhwc run permutes C to the end
    std::string network;        // --network: the network it is a layer shape of, and of how many layers
    int layers = 0;
};

const std::vector<Shape> kShapes = {
    {"resnet50 conv1", {32, 64, 112, 112}}, {"resnet50 stage1", {32, 256, 56, 56}},
    {"resnet50 stage2", {32, 512, 28, 28}}, {"resnet50 stage3", {32, 1024, 14, 14}},
    {"resnet50 stage4", {32, 2048, 7, 7}},  {"small batch", {8, 64, 56, 56}},
    {"rank 2", {4096, 1024}},               {"rank 5", {8, 32, 16, 32, 32}},
};

// The tensor dtypes the bench knows, in the default order of its rows.
const std::vector<std::string> kDtypes = {"f32", "f16", "bf16", "f64"};

struct Settings {
    int threads = 2, repeats = 11;
    bool quick = false, onednn = true;
    std::vector<std::string> dtypes = kDtypes;  // --dtypes (in the given order), --f32-only
    std::vector<std::string> shapes;  // --shape: names or dims to run (all when empty)
    std::string layout;               // --layout: nchw or nhwc only (both when empty)
    std::string network;              // --network resnet50|deeplabv3|all: its layers' shapes, and totals
    std::string pytorch;              // --pytorch PYTHON: PyTorch side by side (--network: /usr/bin/python3)
    std::string json = "iabn-bench.json", png = "iabn-bench.png";
};

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); i++) out += (i ? "," : "") + std::to_string(s[i]);
    return out + "]";
}

// --shape W picks a shape whose name is W ("resnet50 stage1") or whose dims are W ("32x256x56x56").
bool selects(const std::string& want, const Shape& sh) {
    std::string dims;
    for (size_t i = 0; i < sh.nchw.size(); i++) dims += (i ? "x" : "") + std::to_string(sh.nchw[i]);
    return want == sh.name || want == dims;
}

// The same tensor with channels last: logical (n, c, s) goes to (n, s, c).
template <typename T>
std::vector<T> to_channels_last(const std::vector<T>& nchw, int64_t n, int64_t c, int64_t s) {
    std::vector<T> out(nchw.size());
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            for (int64_t k = 0; k < s; k++) out[(i * s + k) * c + j] = nchw[(i * c + j) * s + k];
    return out;
}

// The comparison is only fair if oneDNN computes what iabn computes: checked once per shape,
// norm-wise (||a - b|| / ||b||). Not element-wise: an element whose BN output rounds to the kink
// (0) can take the other slope of leaky_relu in one library, which changes its gradient by O(1)
// and is equally right. 1e-2 holds for 16-bit tensors too: both libraries compute in f32 and
// round each output once (bf16: 2^-8 = 3.9e-3 relative), oneDNN also its intermediate dy.
double relative_difference(const std::vector<float>& dnnl_nchw, const std::vector<float>& iabn_nchw) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < iabn_nchw.size(); i++) {
        const double d = double(dnnl_nchw[i]) - iabn_nchw[i];
        diff += d * d;
        norm += double(iabn_nchw[i]) * iabn_nchw[i];
    }
    return std::sqrt(diff / norm);
}

// What the bench needs to know of each tensor dtype: T is the element's storage (float, double,
// or floor.h's f16 and bf16 bits), Channel the per-channel buffers' (f32 for 16-bit tensors).
template <typename T>
struct Dtype;
template <>
struct Dtype<float> {
    using Channel = float;
    static constexpr iabn::DType dtype = iabn::DType::f32;
    static float from_double(double v) { return static_cast<float>(v); }
    static float to_float(float v) { return v; }
};
template <>
struct Dtype<double> {
    using Channel = double;
    static constexpr iabn::DType dtype = iabn::DType::f64;
    static double from_double(double v) { return v; }
    static float to_float(double v) { return static_cast<float>(v); }
};
template <>
struct Dtype<bench::f16> {
    using Channel = float;
    static constexpr iabn::DType dtype = iabn::DType::f16;
    static bench::f16 from_double(double v) { return bench::to_f16(static_cast<float>(v)); }
    static float to_float(bench::f16 v) { return bench::to_float(v); }
};
template <>
struct Dtype<bench::bf16> {
    using Channel = float;
    static constexpr iabn::DType dtype = iabn::DType::bf16;
    static bench::bf16 from_double(double v) { return bench::to_bf16(static_cast<float>(v)); }
    static float to_float(bench::bf16 v) { return bench::to_float(v); }
};

// One shape and layout's data, drawn once and given to every dtype (each rounds it to its own
// precision), so that the dtypes' rows time the same tensor.
struct Data {
    std::vector<double> x_nchw, dz_nchw;  // logical nchw order
};

// Notes printed under the table: oneDNN's implementations, and why a column is n/a. Each once.
struct Notes {
    std::vector<std::string> lines;
    void add(const std::string& line) {
        if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
    }
};

// One dtype of one shape and layout: its own tensors, iabn's three passes, their floors and
// (f32, and the 16-bit dtypes oneDNN has) oneDNN's training passes. run_shape() interleaves the
// dtypes' samples: each repeat times every pass of every dtype once.
class Case {
public:
    virtual ~Case() = default;
    // Stops the bench if oneDNN and iabn disagree (relative_difference above).
    virtual void check_onednn() = 0;
    // One repeat: each pass once, after a restore and a cache flush; kept unless `keep` is false.
    virtual void sample(bool keep) = 0;
    // fwd-train, fwd-global, bwd-train: medians of the kept samples.
    virtual std::vector<Row> rows() const = 0;
};

template <typename T>
class TypedCase final : public Case {
public:
    TypedCase(const Shape& sh, iabn::Layout layout, const Settings& set, const Data& data, bench::CacheFlush& flush,
              Notes& notes, bench::PyTorchWorker* torch)
        : sh_(sh), layout_(layout), flush_(flush) {
        lay_out();
        std::vector<T> x_nchw, dz_nchw;
        load_inputs(data, x_nchw, dz_nchw);
        make_channel_buffers();
        set_options();
        if (set.onednn && Dtype<T>::dtype != iabn::DType::f64) set_up_onednn(x_nchw, dz_nchw, notes);
        if (torch != nullptr && sh.nchw.size() == 4) set_up_pytorch(*torch, notes);
        // z and the saved statistics for the backward.
        restore_x();
        iabn::forward(tx_, state_, train_);
        z_ = x_;
    }

    ~TypedCase() override {
        if (torch_) torch_->drop(torch_id_);
    }

    void check_onednn() override {
        if (!dnnl_ && !dnnl_blocked_) return;
        // x = z and dz = dx from iabn, against oneDNN's output and input gradient.
        restore_z_dz();
        iabn::backward(tx_, tdz_, state_, grads_, train_);
        const std::vector<float> z_nchw = logical(x_), dx_nchw = logical(dz_);
        // iabn recovers xhat from z rounded to the dtype (unit roundoff u) while oneDNN keeps x, and
        // dx is what is left of dy after its mean and its projection on xhat are removed: over few
        // elements per channel (m) little is left, so the rounding weighs about 1/m more. Measured
        // at [4,256,1,1] bf16 channels-last (m = 4): 15% norm-wise, while the f32 rows of the same
        // data agreed to 1e-2; 512 u / m is 0.5 there. A formula error stays O(1).
        const double u = sizeof(T) == 2 ? std::ldexp(1.0, Dtype<T>::dtype == iabn::DType::bf16 ? -8 : -11) : 0;
        const double tolerance = std::max(1e-2, 512 * u / static_cast<double>(n_ / static_cast<size_t>(channels_)));
        for (bench::DnnlBnLeakyRelu* d : {dnnl_.get(), dnnl_blocked_.get()}) {
            if (d == nullptr) continue;
            d->restore_forward();
            d->forward();
            d->restore_backward();
            d->backward();
            for (auto [what, diff] :
                 {std::make_pair("forward output", relative_difference(d->output_nchw(), z_nchw)),
                  std::make_pair("input gradient", relative_difference(d->grad_input_nchw(), dx_nchw))}) {
                if (!(diff <= tolerance)) {
                    throw std::runtime_error(std::string("oneDNN and iabn disagree on the ") + what + " (" +
                                             iabn::to_string(Dtype<T>::dtype) +
                                             "): norm-wise relative difference " + std::to_string(diff));
                }
            }
        }
    }

    void sample(bool keep) override {
        auto add = [&](std::vector<double>& into, double t) {
            if (keep) into.push_back(t);
        };
        auto fresh_x = [&] { restore_x(); };
        auto fresh_z_dz = [&] { restore_z_dz(); };
        add(fwd_, timed(fresh_x, [&] { iabn::forward(tx_, state_, train_); }));
        add(glob_, timed(fresh_x, [&] { iabn::forward(tx_, state_, global_); }));
        add(bwd_, timed(fresh_z_dz, [&] { iabn::backward(tx_, tdz_, state_, grads_, train_); }));
        sample_floors(keep);
        for (auto [d, f, b] : {std::make_tuple(dnnl_.get(), &dn_fwd_, &dn_bwd_),
                               std::make_tuple(dnnl_blocked_.get(), &dnb_fwd_, &dnb_bwd_)}) {
            if (d == nullptr) continue;
            add(*f, timed([&] { d->restore_forward(); }, [&] { d->forward(); }));
            add(*b, timed([&] { d->restore_backward(); }, [&] { d->backward(); }));
        }
        if (torch_) {  // flushes the caches itself, in its process, before each call
            const auto [forward, backward] = torch_->sample(torch_id_);
            add(pt_fwd_, forward);
            add(pt_bwd_, backward);
        }
        if (sink_ == 12345.678) std::printf(" ");  // keeps the floor reads alive
    }

    std::vector<Row> rows() const override {
        return {row("fwd-train", fwd_, fwd_floor_, channels_last_ ? 3 : 2, dn_fwd_, dnb_fwd_, pt_fwd_, true),
                row("fwd-global", glob_, glob_floor_, 2, {}, {}, {}, false),
                row("bwd-train", bwd_, bwd_floor_, channels_last_ ? 5 : 3, dn_bwd_, dnb_bwd_, pt_bwd_, true)};
    }

private:
    // The tensor's shape in this case's layout (the same tensor, channels last for nhwc), its
    // channels, spatial size and element count. Rank 2 is channels-last whatever the declared
    // layout.
    void lay_out() {
        channels_ = sh_.nchw[1];
        for (size_t i = 2; i < sh_.nchw.size(); i++) spatial_ *= sh_.nchw[i];
        shape_ = sh_.nchw;
        if (layout_ == iabn::Layout::nhwc) {
            shape_.erase(shape_.begin() + 1);
            shape_.push_back(channels_);
        }
        channels_last_ = layout_ == iabn::Layout::nhwc || sh_.nchw.size() == 2;
        n_ = static_cast<size_t>(sh_.nchw[0] * channels_ * spatial_);
    }

    // x and dz in the dtype: in nchw order (for oneDNN) and in this case's layout (x0_, dz0_, the
    // values every timed run starts from), and the tensors iabn runs on.
    void load_inputs(const Data& data, std::vector<T>& x_nchw, std::vector<T>& dz_nchw) {
        x_nchw.resize(n_);
        dz_nchw.resize(n_);
        for (size_t i = 0; i < n_; i++) {
            x_nchw[i] = Dtype<T>::from_double(data.x_nchw[i]);
            dz_nchw[i] = Dtype<T>::from_double(data.dz_nchw[i]);
        }
        x0_ = layout_ == iabn::Layout::nhwc ? to_channels_last(x_nchw, sh_.nchw[0], channels_, spatial_) : x_nchw;
        dz0_ = layout_ == iabn::Layout::nhwc ? to_channels_last(dz_nchw, sh_.nchw[0], channels_, spatial_) : dz_nchw;
        x_.resize(n_);
        dz_.resize(n_);
        tx_ = iabn::TensorRef{x_.data(), Dtype<T>::dtype, shape_};
        tdz_ = iabn::TensorRef{dz_.data(), Dtype<T>::dtype, shape_};
    }

    // The per-channel buffers: weight 1, running_var 1, the others 0.
    void make_channel_buffers() {
        using C = typename Dtype<T>::Channel;
        for (std::vector<C>* v : {&w_, &b_, &rm_, &rv_, &sm_, &si_, &wg_, &bg_}) v->assign(channels_, C(0));
        std::fill(w_.begin(), w_.end(), C(1));
        std::fill(rv_.begin(), rv_.end(), C(1));
        const iabn::DType cd = std::is_same<C, double>::value ? iabn::DType::f64 : iabn::DType::f32;
        auto ch = [&](std::vector<C>& v) { return iabn::TensorRef{v.data(), cd, {channels_}}; };
        state_ = iabn::ChannelState{ch(w_), ch(b_), ch(rm_), ch(rv_), ch(sm_), ch(si_)};
        grads_ = iabn::ParamGrads{ch(wg_), ch(bg_)};
    }

    // Training (batch statistics) and global statistics, both with leaky_relu(0.01).
    void set_options() {
        train_.activation = iabn::Activation::leaky_relu;
        train_.activation_param = 0.01;
        train_.layout = layout_;
        global_ = train_;
        global_.training = false;
    }

    // oneDNN, where it has the dtype (its CPU batch normalization has no f64): the same layout,
    // and for nchw its blocked nChw16c too (rank 2 has no blocked format).
    void set_up_onednn(const std::vector<T>& x_nchw, const std::vector<T>& dz_nchw, Notes& notes) {
        const bench::DnnlType type = Dtype<T>::dtype == iabn::DType::f32   ? bench::DnnlType::f32
                                     : Dtype<T>::dtype == iabn::DType::f16 ? bench::DnnlType::f16
                                                                           : bench::DnnlType::bf16;
        // oneDNN loads f32 values, the dtype's own (exact in f32): it gets iabn's inputs.
        std::vector<float> xf(n_), dzf(n_);
        for (size_t i = 0; i < n_; i++) {
            xf[i] = Dtype<T>::to_float(x_nchw[i]);
            dzf[i] = Dtype<T>::to_float(dz_nchw[i]);
        }
        const bench::DnnlFormat same = layout_ == iabn::Layout::nhwc ? bench::DnnlFormat::nhwc : bench::DnnlFormat::nchw;
        dnnl_ = make_dnnl(same, type, xf, dzf, notes, dnnl_na_);
        if (layout_ == iabn::Layout::nchw && sh_.nchw.size() > 2) {
            dnnl_blocked_ = make_dnnl(bench::DnnlFormat::blocked16c, type, xf, dzf, notes, dnnl_blocked_na_);
        }
    }

    // PyTorch (F.batch_norm + F.leaky_relu_, autograd), on its own tensors of this shape and
    // layout, in its own process (pytorch.h): 4-d shapes, where channels-last is torch's
    // channels_last memory format.
    void set_up_pytorch(bench::PyTorchWorker& torch, Notes& notes) {
        static int next_id = 0;
        const std::string id = std::to_string(next_id++), dtype = iabn::to_string(Dtype<T>::dtype);
        const std::string na = torch.setup(id, dtype, iabn::to_string(layout_), sh_.nchw);
        if (na.empty()) {
            torch_ = &torch;
            torch_id_ = id;
        } else {
            torch_na_ = true;
            notes.add("PyTorch " + torch.version() + " " + dtype + ": n/a, " + na);
        }
    }

    // Every variant of each floor (floor.h), timed as the passes are; rows() keeps the fastest.
    void sample_floors(bool keep) {
        auto add = [&](std::vector<double>& into, double t) {
            if (keep) into.push_back(t);
        };
        auto fresh_x = [&] { restore_x(); };
        auto fresh_z_dz = [&] { restore_z_dz(); };
        for (int v = 0; v < floor_variants(); v++) {
            add(fwd_floor_[v], timed(fresh_x, [&] {
                    if (channels_last_) sink_ += bench::floor_read(x_.data(), n_, v);
                    bench::floor_scale(x_.data(), n_, v);
                }));
            add(glob_floor_[v], timed(fresh_x, [&] { bench::floor_scale(x_.data(), n_, v); }));
            add(bwd_floor_[v], timed(fresh_z_dz, [&] {
                    if (channels_last_) {
                        sink_ += bench::floor_read(x_.data(), n_, v) + bench::floor_read(dz_.data(), n_, v);
                    }
                    bench::floor_combine(dz_.data(), x_.data(), n_, v);
                }));
        }
    }

    // The row of one pass: iabn's median, the fastest floor variant's, oneDNN's and PyTorch's
    // (`timed_by_others`: they would have been timed on this pass; n/a where they have no
    // implementation here).
    using Floors = std::vector<std::vector<double>>;
    Row row(const char* pass, const std::vector<double>& t, const Floors& t_floor, double passes,
            const std::vector<double>& t_dnnl, const std::vector<double>& t_blocked, const std::vector<double>& t_torch,
            bool timed_by_others) const {
        Row r;
        r.shape_name = sh_.name;
        r.shape = shape_text(shape_);
        r.layout = sh_.nchw.size() == 2 ? "rank2" : iabn::to_string(layout_);
        r.network = sh_.network;
        r.layers = sh_.layers;
        r.dtype = iabn::to_string(Dtype<T>::dtype);
        r.pass = pass;
        r.iabn_ms = bench::median(t) * 1e3;
        // The fastest variant's median.
        for (size_t v = 0; v < t_floor.size(); v++) {
            const double ms = bench::median(t_floor[v]) * 1e3;
            r.floor_variants_ms.push_back(ms);
            if (v == 0 || ms < r.floor_ms) {
                r.floor_ms = ms;
                r.floor_variant = sizeof(T) >= 4 ? bench::floor_variants()[v] : "16-bit";
            }
        }
        r.floor_passes = passes;
        r.tensor_bytes = double(n_) * sizeof(T);
        r.onednn_ms = bench::median(t_dnnl) * 1e3;
        r.onednn_blocked_ms = bench::median(t_blocked) * 1e3;
        r.onednn_na = timed_by_others && dnnl_na_;
        r.onednn_blocked_na = timed_by_others && dnnl_blocked_na_;
        r.pytorch_ms = bench::median(t_torch) * 1e3;
        r.pytorch_na = timed_by_others && torch_na_;
        return r;
    }

    // oneDNN in `format`, or nullptr with `na` set where it has no implementation for a 16-bit
    // type (f32 must work: a failure there stops the bench, as before 16-bit rows existed).
    std::unique_ptr<bench::DnnlBnLeakyRelu> make_dnnl(bench::DnnlFormat format, bench::DnnlType type,
                                                      const std::vector<float>& x, const std::vector<float>& dz,
                                                      Notes& notes, bool& na) {
        const std::string what = std::string("oneDNN ") + bench::to_string(type) + " " +
                                 bench::to_string(format, sh_.nchw.size()) + ": ";
        try {
            auto d = std::make_unique<bench::DnnlBnLeakyRelu>(sh_.nchw, format, 0.01f, type);
            d->load(x.data(), dz.data());
            notes.add(what + d->implementations());
            return d;
        } catch (const bench::DnnlUnsupported& e) {
            if (type == bench::DnnlType::f32) throw std::runtime_error(what + e.what());
            na = true;
            notes.add(what + "n/a, " + e.what());
            return nullptr;
        }
    }

    // One timed run of `run` after `prepare` and a cache flush (neither timed).
    double timed(const std::function<void()>& prepare, const std::function<void()>& run) {
        prepare();
        flush_();
        const double start = bench::now();
        run();
        return bench::now() - start;
    }
    void restore_x() { std::memcpy(x_.data(), x0_.data(), n_ * sizeof(T)); }
    void restore_z_dz() {
        std::memcpy(x_.data(), z_.data(), n_ * sizeof(T));
        std::memcpy(dz_.data(), dz0_.data(), n_ * sizeof(T));
    }
    // A tensor of this case's layout, in logical nchw order, as f32 (exact for every dtype but
    // f64, which oneDNN does not run).
    std::vector<float> logical(const std::vector<T>& v) const {
        std::vector<float> out(n_);
        for (int64_t i = 0; i < sh_.nchw[0]; i++)
            for (int64_t c = 0; c < channels_; c++)
                for (int64_t k = 0; k < spatial_; k++) {
                    const int64_t at = layout_ == iabn::Layout::nhwc ? (i * spatial_ + k) * channels_ + c
                                                                     : (i * channels_ + c) * spatial_ + k;
                    out[(i * channels_ + c) * spatial_ + k] = Dtype<T>::to_float(v[at]);
                }
        return out;
    }

    const Shape& sh_;
    iabn::Layout layout_;
    bench::CacheFlush& flush_;
    int64_t channels_ = 0, spatial_ = 1;
    std::vector<int64_t> shape_;
    bool channels_last_ = false;
    size_t n_ = 0;
    std::vector<T> x0_, dz0_, x_, dz_, z_;
    std::vector<typename Dtype<T>::Channel> w_, b_, rm_, rv_, sm_, si_, wg_, bg_;
    iabn::ChannelState state_;
    iabn::ParamGrads grads_;
    iabn::Options train_, global_;
    iabn::TensorRef tx_, tdz_;
    std::unique_ptr<bench::DnnlBnLeakyRelu> dnnl_, dnnl_blocked_;
    bool dnnl_na_ = false, dnnl_blocked_na_ = false;
    bench::PyTorchWorker* torch_ = nullptr;  // set where PyTorch runs this case
    std::string torch_id_;
    bool torch_na_ = false;
    // The floors' samples, one list per variant (floor.h): every variant for f32 and f64, the one
    // of the 16-bit floors.
    static int floor_variants() { return sizeof(T) >= 4 ? static_cast<int>(bench::floor_variants().size()) : 1; }
    std::vector<double> fwd_, glob_, bwd_, dn_fwd_, dn_bwd_, dnb_fwd_, dnb_bwd_, pt_fwd_, pt_bwd_;
    Floors fwd_floor_ = Floors(floor_variants()), glob_floor_ = Floors(floor_variants()),
           bwd_floor_ = Floors(floor_variants());
    double sink_ = 0;
};

std::unique_ptr<Case> make_case(const std::string& dtype, const Shape& sh, iabn::Layout layout, const Settings& set,
                                const Data& data, bench::CacheFlush& flush, Notes& notes, bench::PyTorchWorker* torch) {
    if (dtype == "f32") return std::make_unique<TypedCase<float>>(sh, layout, set, data, flush, notes, torch);
    if (dtype == "f64") return std::make_unique<TypedCase<double>>(sh, layout, set, data, flush, notes, torch);
    if (dtype == "f16") return std::make_unique<TypedCase<bench::f16>>(sh, layout, set, data, flush, notes, torch);
    return std::make_unique<TypedCase<bench::bf16>>(sh, layout, set, data, flush, notes, torch);
}

// Times one shape in one layout, every selected dtype on the same data, interleaved: each repeat
// runs every pass of every dtype once (after a warm-up round), so that the noise of a shared
// machine hits the dtypes alike. Prints the rows by pass, the dtypes of a pass side by side.
std::vector<Row> run_shape(const Shape& sh, iabn::Layout layout, const Settings& set, std::mt19937& rng,
                           bench::CacheFlush& flush, Notes& notes, bench::PyTorchWorker* torch) {
    const size_t n = static_cast<size_t>(std::accumulate(sh.nchw.begin(), sh.nchw.end(), int64_t{1},
                                                         std::multiplies<int64_t>()));
    std::vector<std::unique_ptr<Case>> cases;
    {
        Data data;
        data.x_nchw.resize(n);
        data.dz_nchw.resize(n);
        std::normal_distribution<double> normal(0, 1);
        for (size_t i = 0; i < n; i++) {
            data.x_nchw[i] = 0.5 + normal(rng);
            data.dz_nchw[i] = normal(rng);
        }
        for (const std::string& dtype : set.dtypes) {
            cases.push_back(make_case(dtype, sh, layout, set, data, flush, notes, torch));
        }
    }
    for (auto& c : cases) c->check_onednn();
    for (int r = 0; r < set.repeats + 1; r++) {
        for (auto& c : cases) c->sample(r > 0);  // round 0 warms up
    }
    std::vector<std::vector<Row>> by_case;
    for (auto& c : cases) by_case.push_back(c->rows());
    std::vector<Row> rows;
    for (size_t pass = 0; pass < 3; pass++) {
        for (const std::vector<Row>& r : by_case) {
            bench::print_row(r[pass]);
            rows.push_back(r[pass]);
        }
    }
    return rows;
}

// The two stream rates of this machine (RunInfo::read_gbs, read_write_gbs), medians of the same
// repeats as the shapes, on 128 MB, the caches flushed before each pass.
void measure_memory(bench::RunInfo& info, const Settings& set, bench::CacheFlush& flush) {
    const size_t n = size_t{128} << 20 >> 2;
    std::vector<float> buf(n, 1.0f);
    const int variants = static_cast<int>(bench::floor_variants().size());
    std::vector<std::vector<double>> read(variants), read_write(variants);
    double sink = 0;
    for (int r = 0; r < set.repeats + 1; r++) {
        for (int v = 0; v < variants; v++) {
            flush();
            double start = bench::now();
            sink += bench::floor_read(buf.data(), n, v);
            const double t_read = bench::now() - start;
            flush();
            start = bench::now();
            bench::floor_scale(buf.data(), n, v);
            const double t_read_write = bench::now() - start;
            if (r == 0) continue;  // warm-up
            read[v].push_back(t_read);
            read_write[v].push_back(t_read_write);
        }
    }
    if (sink == 12345.678) std::printf(" ");  // keeps the reads alive
    const double bytes = double(n) * sizeof(float);
    for (int v = 0; v < variants; v++) {  // the fastest variant's rates
        info.read_gbs = std::max(info.read_gbs, bytes / bench::median(read[v]) / 1e9);
        info.read_write_gbs = std::max(info.read_write_gbs, 2 * bytes / bench::median(read_write[v]) / 1e9);
    }
}

// "f32,bf16" -> {"f32", "bf16"}: known names, each once.
std::vector<std::string> split_dtypes(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string d; std::getline(in, d, ',');) {
        if (std::find(kDtypes.begin(), kDtypes.end(), d) == kDtypes.end())
            throw std::runtime_error("--dtypes takes f32, f16, bf16 and f64, comma-separated, not '" + d + "'");
        if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
    }
    if (out.empty()) throw std::runtime_error("--dtypes names no dtype");
    return out;
}

Settings parse(int argc, char** argv) {
    Settings set;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
            return argv[++i];
        };
        if (a == "--threads") set.threads = std::stoi(value());
        else if (a == "--repeats") set.repeats = std::max(3, std::stoi(value()));
        else if (a == "--quick") set.quick = true;
        else if (a == "--f32-only") set.dtypes = {"f32"};
        else if (a == "--dtypes") set.dtypes = split_dtypes(value());
        else if (a == "--no-onednn") set.onednn = false;
        else if (a == "--shape") set.shapes.push_back(value());
        else if (a == "--layout") set.layout = value();
        else if (a == "--network") set.network = value();
        else if (a == "--pytorch") set.pytorch = value();
        else if (a == "--no-pytorch") set.pytorch = "none";
        else if (a == "--json") set.json = value();
        else if (a == "--png") set.png = value();
        else {
            std::fprintf(stderr,
                         "usage: iabn-bench [--threads 2] [--repeats 11] [--quick] [--dtypes f32,f16,bf16,f64]\n"
                         "                  [--f32-only] [--no-onednn] [--shape NAME|DIMS]... [--layout nchw|nhwc]\n"
                         "                  [--network resnet50|deeplabv3|all] [--pytorch PYTHON | --no-pytorch]\n"
                         "                  [--json iabn-bench.json] [--png iabn-bench.png]\n");
            std::exit(a == "--help" ? 0 : 2);
        }
    }
    if (set.quick) set.repeats = 3;
    if (!set.network.empty() && set.network != "all" &&
        std::none_of(bench::networks().begin(), bench::networks().end(),
                     [&](const bench::Network& n) { return n.name == set.network; }))
        throw std::runtime_error("--network takes resnet50, deeplabv3 or all, not '" + set.network + "'");
    // PyTorch joins by default where the bench runs networks, with Debian's interpreter (the one
    // python3-torch installs into).
    if (set.pytorch.empty() && !set.network.empty()) set.pytorch = "/usr/bin/python3";
    if (set.pytorch == "none") set.pytorch.clear();
    if (!set.layout.empty() && set.layout != "nchw" && set.layout != "nhwc")
        throw std::runtime_error("--layout takes nchw or nhwc, not '" + set.layout + "'");
    for (const std::string& want : set.shapes) {
        if (std::none_of(kShapes.begin(), kShapes.end(), [&](const Shape& sh) { return selects(want, sh); }))
            throw std::runtime_error("--shape '" + want + "' names none of the benchmark's shapes");
    }
    return set;
}

}  // namespace

int main(int argc, char** argv) try {
    bench::keep_openmp_threads_passive(argv);
    const Settings set = parse(argc, argv);
    iabn::set_num_threads(set.threads);
    omp_set_num_threads(set.threads);

    bench::RunInfo info;
    char date[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&t));
    info.date = date;
    info.cpu = bench::cpu_model();
    info.kernel_target = iabn::kernel_target();
    for (const std::string& d : set.dtypes) {
        if (d == "f16" || d == "bf16") info.floor_conversions = bench::floor_conversions();
    }
    info.threads = set.threads;
    info.repeats = set.repeats;
    for (int i = 0; i < argc; i++) info.command += (i ? " " : "") + std::string(argv[i]);
    bench::check_floor_variants();
    bench::CacheFlush flush;
    measure_memory(info, set, flush);
    std::unique_ptr<bench::PyTorchWorker> torch;
    if (!set.pytorch.empty()) {
        torch = std::make_unique<bench::PyTorchWorker>(set.pytorch, set.threads, bench::CacheFlush::bytes());
        if (torch->available()) {
            info.pytorch = "PyTorch " + torch->version() + " on the CPU (" + set.pytorch + ")";
        } else {
            info.pytorch = "PyTorch not measured: " + torch->why();
            torch.reset();
        }
    }
    bench::print_header(info);

    std::mt19937 rng(12345);
    std::vector<Row> rows;
    std::vector<Shape> shapes = set.quick ? std::vector<Shape>{kShapes[1], kShapes[6]} : kShapes;
    if (!set.shapes.empty()) {
        std::vector<Shape> picked;
        for (const Shape& sh : kShapes)
            if (std::any_of(set.shapes.begin(), set.shapes.end(), [&](const std::string& w) { return selects(w, sh); }))
                picked.push_back(sh);
        shapes = picked;
    }
    if (!set.network.empty()) {
        shapes.clear();
        for (const bench::Network& net : bench::networks()) {
            if (set.network != "all" && set.network != net.name) continue;
            for (size_t k = 0; k < net.layers.size(); k++) {  // named "<network> #<k> x<layers>"
                const bench::Layers& l = net.layers[k];
                shapes.push_back({net.name + " #" + std::to_string(k + 1) + " x" + std::to_string(l.count), l.nchw,
                                  net.name, l.count});
            }
        }
    }
    Notes notes;
    for (const Shape& sh : shapes) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            if (sh.nchw.size() == 2 && layout == iabn::Layout::nhwc) continue;  // rank 2: one run
            if (!set.layout.empty() && set.layout != iabn::to_string(layout)) continue;
            std::vector<Row> r = run_shape(sh, layout, set, rng, flush, notes, torch.get());
            rows.insert(rows.end(), r.begin(), r.end());
        }
    }
    const std::vector<bench::NetworkTotal> totals = bench::network_totals(rows);
    if (!totals.empty()) bench::print_network_totals(totals);
    // A pass faster than its floor by more than the noise means the floor is not the fastest loop
    // for those bytes (or the pass moves fewer): say so rather than report a flattering ratio.
    for (const Row& r : rows) {
        if (r.iabn_ms < 0.9 * r.floor_ms) {
            char line[256];
            std::snprintf(line, sizeof line, "BELOW THE FLOOR: %s %s %s %s: iabn %.3f ms, floor %.3f ms (%s)",
                          r.shape.c_str(), r.layout.c_str(), r.dtype.c_str(), r.pass.c_str(), r.iabn_ms, r.floor_ms,
                          r.floor_variant.c_str());
            notes.add(line);
        }
    }
    if (!notes.lines.empty()) std::printf("\n");
    for (const std::string& line : notes.lines) std::printf("%s\n", line.c_str());
    info.notes = notes.lines;
    bench::write_json(set.json, info, rows, totals);
    std::printf("\nwrote %s\n", set.json.c_str());
    // A network run's chart is its totals'; another run's, its shapes'.
    if (totals.empty() ? bench::write_chart(set.png, info, rows) : bench::write_network_chart(set.png, info, totals))
        std::printf("wrote %s\n", set.png.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench: %s\n", e.what());
    return 1;
}
