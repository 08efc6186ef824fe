// iabn-bench: times iabn's passes against the memory-bandwidth floor and against oneDNN, measured
// in the same process and run, on the same data, with the same thread count, interleaved so that
// the noise of a shared machine hits all of them alike. Reports medians as a table, a JSON file
// and a chart (README.md here says what is measured and how).
//
//   iabn-bench [--threads 2] [--repeats 11] [--quick] [--f32-only] [--no-onednn]
//              [--shape NAME|DIMS]... [--layout nchw|nhwc]
//              [--json iabn-bench.json] [--png iabn-bench.png]
//
// Floors (docs/DESIGN.md, "Performance model"), in passes over the tensor:
//   forward (training):          nchw 2 (read x, write z); channels-last 3 (+ a read for the statistics)
//   forward (global statistics): 2
//   backward (training):         nchw 3 (read z and dz, write dx); channels-last 5 (+ reads of z and dz)
#include "floor.h"
#include "onednn.h"
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
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using bench::Row;

struct Shape {
    std::string name;
    std::vector<int64_t> nchw;  // logical [N, C, ...]; the nhwc run permutes C to the end
};

const std::vector<Shape> kShapes = {
    {"resnet50 conv1", {32, 64, 112, 112}}, {"resnet50 stage1", {32, 256, 56, 56}},
    {"resnet50 stage2", {32, 512, 28, 28}}, {"resnet50 stage3", {32, 1024, 14, 14}},
    {"resnet50 stage4", {32, 2048, 7, 7}},  {"small batch", {8, 64, 56, 56}},
    {"rank 2", {4096, 1024}},               {"rank 5", {8, 32, 16, 32, 32}},
};

struct Settings {
    int threads = 2, repeats = 11;
    bool quick = false, f64 = true, onednn = true;
    std::vector<std::string> shapes;  // --shape: names or dims to run (all when empty)
    std::string layout;               // --layout: nchw or nhwc only (both when empty)
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

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
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
// and is equally right.
double relative_difference(const std::vector<float>& dnnl_nchw, const std::vector<float>& iabn_nchw) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < iabn_nchw.size(); i++) {
        const double d = double(dnnl_nchw[i]) - iabn_nchw[i];
        diff += d * d;
        norm += double(iabn_nchw[i]) * iabn_nchw[i];
    }
    return std::sqrt(diff / norm);
}

// Times one shape in one layout and dtype: iabn's three passes, their floors and (f32 training
// passes) oneDNN, interleaved, `repeats` samples each after a warm-up round.
template <typename T>
std::vector<Row> run_shape(const Shape& sh, iabn::Layout layout, const Settings& set, std::mt19937& rng,
                           bench::CacheFlush& flush) {
    constexpr bool is_f32 = std::is_same<T, float>::value;
    const iabn::DType dtype = is_f32 ? iabn::DType::f32 : iabn::DType::f64;
    const int64_t channels = sh.nchw[1];
    int64_t spatial = 1;
    for (size_t i = 2; i < sh.nchw.size(); i++) spatial *= sh.nchw[i];
    std::vector<int64_t> shape = sh.nchw;
    if (layout == iabn::Layout::nhwc) {  // the same tensor, channels last
        shape.erase(shape.begin() + 1);
        shape.push_back(channels);
    }
    // Rank 2 is channels-last whatever the declared layout.
    const bool channels_last = layout == iabn::Layout::nhwc || sh.nchw.size() == 2;
    const size_t n = static_cast<size_t>(sh.nchw[0] * channels * spatial);

    std::normal_distribution<T> normal(0, 1);
    std::vector<T> x_nchw(n), dz_nchw(n);
    for (size_t i = 0; i < n; i++) {
        x_nchw[i] = T(0.5) + normal(rng);
        dz_nchw[i] = normal(rng);
    }
    const std::vector<T> x0 = layout == iabn::Layout::nhwc ? to_channels_last(x_nchw, sh.nchw[0], channels, spatial)
                                                           : x_nchw;
    const std::vector<T> dz0 = layout == iabn::Layout::nhwc
                                   ? to_channels_last(dz_nchw, sh.nchw[0], channels, spatial)
                                   : dz_nchw;
    std::vector<T> x(n), dz(n), z(n), w(channels, 1), b(channels, 0), rm(channels, 0), rv(channels, 1), sm(channels),
        si(channels), wg(channels), bg(channels);
    auto ch = [&](std::vector<T>& v) { return iabn::TensorRef{v.data(), dtype, {channels}}; };
    const iabn::ChannelState state{ch(w), ch(b), ch(rm), ch(rv), ch(sm), ch(si)};
    const iabn::ParamGrads grads{ch(wg), ch(bg)};
    iabn::Options train;
    train.activation = iabn::Activation::leaky_relu;
    train.activation_param = 0.01;
    train.layout = layout;
    iabn::Options global = train;
    global.training = false;
    const iabn::TensorRef tx{x.data(), dtype, shape}, tdz{dz.data(), dtype, shape};

    // oneDNN, f32 only (its CPU batch normalization has no f64): the same layout, and for nchw its
    // blocked nChw16c too (rank 2 has no blocked format).
    std::unique_ptr<bench::DnnlBnLeakyRelu> dnnl, dnnl_blocked;
    if (is_f32 && set.onednn) {
        const bench::DnnlFormat format = layout == iabn::Layout::nhwc ? bench::DnnlFormat::nhwc : bench::DnnlFormat::nchw;
        dnnl = std::make_unique<bench::DnnlBnLeakyRelu>(sh.nchw, format, 0.01f);
        dnnl->load(reinterpret_cast<const float*>(x_nchw.data()), reinterpret_cast<const float*>(dz_nchw.data()));
        if (layout == iabn::Layout::nchw && sh.nchw.size() > 2) {
            dnnl_blocked = std::make_unique<bench::DnnlBnLeakyRelu>(sh.nchw, bench::DnnlFormat::blocked16c, 0.01f);
            dnnl_blocked->load(reinterpret_cast<const float*>(x_nchw.data()),
                               reinterpret_cast<const float*>(dz_nchw.data()));
        }
    }

    // One timed run of `run` after `prepare` and a cache flush (neither timed).
    auto timed = [&](const std::function<void()>& prepare, const std::function<void()>& run) {
        prepare();
        flush();
        const double start = bench::now();
        run();
        return bench::now() - start;
    };
    auto restore_x = [&] { std::memcpy(x.data(), x0.data(), n * sizeof(T)); };
    auto restore_z_dz = [&] {
        std::memcpy(x.data(), z.data(), n * sizeof(T));
        std::memcpy(dz.data(), dz0.data(), n * sizeof(T));
    };
    // z and the saved statistics for the backward.
    restore_x();
    iabn::forward(tx, state, train);
    z = x;

    // x = z and dz = dx from iabn, against oneDNN's output and input gradient.
    if (dnnl) {
        restore_z_dz();
        iabn::backward(tx, tdz, state, grads, train);
        auto logical = [&](const std::vector<T>& v) {
            std::vector<float> out(n);
            for (int64_t i = 0; i < sh.nchw[0]; i++)
                for (int64_t c = 0; c < channels; c++)
                    for (int64_t k = 0; k < spatial; k++) {
                        const int64_t at = layout == iabn::Layout::nhwc ? (i * spatial + k) * channels + c
                                                                        : (i * channels + c) * spatial + k;
                        out[(i * channels + c) * spatial + k] = static_cast<float>(v[at]);
                    }
            return out;
        };
        const std::vector<float> z_nchw = logical(x), dx_nchw = logical(dz);
        for (bench::DnnlBnLeakyRelu* d : {dnnl.get(), dnnl_blocked.get()}) {
            if (d == nullptr) continue;
            d->restore_forward();
            d->forward();
            d->restore_backward();
            d->backward();
            for (auto [what, diff] : {std::make_pair("forward output", relative_difference(d->output_nchw(), z_nchw)),
                                      std::make_pair("input gradient",
                                                     relative_difference(d->grad_input_nchw(), dx_nchw))}) {
                if (!(diff <= 1e-2)) {
                    throw std::runtime_error(std::string("oneDNN and iabn disagree on the ") + what +
                                             ": norm-wise relative difference " + std::to_string(diff));
                }
            }
        }
    }

    double sink = 0;
    std::vector<double> fwd, fwd_floor, glob, glob_floor, bwd, bwd_floor, dn_fwd, dn_bwd, dnb_fwd, dnb_bwd;
    for (int r = 0; r < set.repeats + 1; r++) {
        const bool keep = r > 0;  // round 0 warms up
        auto sample = [&](std::vector<double>& into, double t) {
            if (keep) into.push_back(t);
        };
        sample(fwd, timed(restore_x, [&] { iabn::forward(tx, state, train); }));
        sample(fwd_floor, timed(restore_x, [&] {
                   if (channels_last) sink += bench::floor_read(x.data(), n);
                   bench::floor_scale(x.data(), n);
               }));
        sample(glob, timed(restore_x, [&] { iabn::forward(tx, state, global); }));
        sample(glob_floor, timed(restore_x, [&] { bench::floor_scale(x.data(), n); }));
        sample(bwd, timed(restore_z_dz, [&] { iabn::backward(tx, tdz, state, grads, train); }));
        sample(bwd_floor, timed(restore_z_dz, [&] {
                   if (channels_last) sink += bench::floor_read(x.data(), n) + bench::floor_read(dz.data(), n);
                   bench::floor_combine(dz.data(), x.data(), n);
               }));
        for (auto [d, f, bw] : {std::make_tuple(dnnl.get(), &dn_fwd, &dn_bwd),
                                std::make_tuple(dnnl_blocked.get(), &dnb_fwd, &dnb_bwd)}) {
            if (d == nullptr) continue;
            sample(*f, timed([&] { d->restore_forward(); }, [&] { d->forward(); }));
            sample(*bw, timed([&] { d->restore_backward(); }, [&] { d->backward(); }));
        }
    }
    if (sink == 12345.678) std::printf(" ");  // keeps the floor reads alive

    const std::string layout_name = sh.nchw.size() == 2 ? "rank2" : iabn::to_string(layout);
    std::vector<Row> rows;
    auto add = [&](const char* pass, const std::vector<double>& t, const std::vector<double>& t_floor, double passes,
                   const std::vector<double>& t_dnnl, const std::vector<double>& t_blocked) {
        Row row;
        row.shape_name = sh.name;
        row.shape = shape_text(shape);
        row.layout = layout_name;
        row.dtype = is_f32 ? "f32" : "f64";
        row.pass = pass;
        row.iabn_ms = bench::median(t) * 1e3;
        row.floor_ms = bench::median(t_floor) * 1e3;
        row.floor_passes = passes;
        row.tensor_bytes = double(n) * sizeof(T);
        row.onednn_ms = bench::median(t_dnnl) * 1e3;
        row.onednn_blocked_ms = bench::median(t_blocked) * 1e3;
        bench::print_row(row);
        rows.push_back(row);
    };
    add("fwd-train", fwd, fwd_floor, channels_last ? 3 : 2, dn_fwd, dnb_fwd);
    add("fwd-global", glob, glob_floor, 2, {}, {});
    add("bwd-train", bwd, bwd_floor, channels_last ? 5 : 3, dn_bwd, dnb_bwd);
    return rows;
}

// The two stream rates of this machine (RunInfo::read_gbs, read_write_gbs), medians of the same
// repeats as the shapes, on 128 MB: more than any cache here.
void measure_memory(bench::RunInfo& info, const Settings& set, bench::CacheFlush& flush) {
    const size_t n = size_t{128} << 20 >> 2;
    std::vector<float> buf(n, 1.0f);
    std::vector<double> read, read_write;
    double sink = 0;
    for (int r = 0; r < set.repeats + 1; r++) {
        flush();
        double start = bench::now();
        sink += bench::floor_read(buf.data(), n);
        const double t_read = bench::now() - start;
        flush();
        start = bench::now();
        bench::floor_scale(buf.data(), n);
        const double t_read_write = bench::now() - start;
        if (r == 0) continue;  // warm-up
        read.push_back(t_read);
        read_write.push_back(t_read_write);
    }
    if (sink == 12345.678) std::printf(" ");  // keeps the reads alive
    const double bytes = double(n) * sizeof(float);
    info.read_gbs = bytes / bench::median(read) / 1e9;
    info.read_write_gbs = 2 * bytes / bench::median(read_write) / 1e9;
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
        else if (a == "--f32-only") set.f64 = false;
        else if (a == "--no-onednn") set.onednn = false;
        else if (a == "--shape") set.shapes.push_back(value());
        else if (a == "--layout") set.layout = value();
        else if (a == "--json") set.json = value();
        else if (a == "--png") set.png = value();
        else {
            std::fprintf(stderr,
                         "usage: iabn-bench [--threads 2] [--repeats 11] [--quick] [--f32-only] [--no-onednn]\n"
                         "                  [--shape NAME|DIMS]... [--layout nchw|nhwc]\n"
                         "                  [--json iabn-bench.json] [--png iabn-bench.png]\n");
            std::exit(a == "--help" ? 0 : 2);
        }
    }
    if (set.quick) set.repeats = 3;
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
    // OpenMP's idle threads spin after each parallel region by default (the floor, the cache flush
    // and oneDNN run on OpenMP): on a 2-core machine they would take the cores from iabn's threads
    // in the run that follows (measured: 1.4x -> 2.1x on the nchw forward). libgomp reads
    // OMP_WAIT_POLICY once, at load time, so set it and start again.
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        std::perror("iabn-bench: re-exec with OMP_WAIT_POLICY=passive");
        return 1;
    }
    const Settings set = parse(argc, argv);
    iabn::set_num_threads(set.threads);
    omp_set_num_threads(set.threads);

    bench::RunInfo info;
    char date[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&t));
    info.date = date;
    info.cpu = cpu_model();
    info.kernel_target = iabn::kernel_target();
    info.threads = set.threads;
    info.repeats = set.repeats;
    for (int i = 0; i < argc; i++) info.command += (i ? " " : "") + std::string(argv[i]);
    bench::CacheFlush flush;
    measure_memory(info, set, flush);
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
    for (bool f64 : {false, true}) {
        if (f64 && !set.f64) continue;
        for (const Shape& sh : shapes) {
            for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
                if (sh.nchw.size() == 2 && layout == iabn::Layout::nhwc) continue;  // rank 2: one run
                if (!set.layout.empty() && set.layout != iabn::to_string(layout)) continue;
                std::vector<Row> r = f64 ? run_shape<double>(sh, layout, set, rng, flush)
                                         : run_shape<float>(sh, layout, set, rng, flush);
                rows.insert(rows.end(), r.begin(), r.end());
            }
        }
    }
    bench::write_json(set.json, info, rows);
    std::printf("\nwrote %s\n", set.json.c_str());
    if (bench::write_chart(set.png, info, rows)) std::printf("wrote %s\n", set.png.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench: %s\n", e.what());
    return 1;
}
