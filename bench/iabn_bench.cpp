// iabn-bench: times iabn's passes against the memory-bandwidth floor, measured in the same process
// and run, on the same buffers, with the same thread count, interleaved so that the noise of a
// shared machine hits both alike. Reports medians, GB/s and the ratio to the floor, as a table
// and as JSON.
//
//   iabn-bench [--threads 2] [--repeats 11] [--quick] [--json iabn-bench.json]
//
// Floors (DESIGN.md, "Performance model"), in passes over the tensor:
//   forward (training):          nchw 2 (read x, write z); channels-last 3 (+ a read for the statistics)
//   forward (global statistics): 2
//   backward (training):         nchw 3 (read z and dz, write dx); channels-last 5 (+ reads of z and dz)
#include "floor.h"

#include <iabn/iabn.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

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

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); i++) out += (i ? "," : "") + std::to_string(s[i]);
    return out + "]";
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
}

struct Row {
    std::string shape_name, shape, layout, op;
    double iabn_ms, floor_ms, floor_passes, bytes_per_pass;
};

// Evicts the tensors from the caches between timed runs (the largest L3 here is 32 MB).
struct CacheFlush {
    std::vector<float> junk = std::vector<float>(size_t{64} << 20 >> 2, 1.0f);
    void operator()() {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < junk.size(); i++) junk[i] += 1.0f;
    }
};

}  // namespace

int main(int argc, char** argv) try {
    // OpenMP's idle threads spin after each parallel region by default (the floor and the cache
    // flush are OpenMP loops): on a 2-core machine they would take the cores from iabn's threads
    // in the run that follows (measured: 1.4x -> 2.1x on the nchw forward). libgomp reads
    // OMP_WAIT_POLICY once, at load time, so set it and start again.
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        std::perror("iabn-bench: re-exec with OMP_WAIT_POLICY=passive");
        return 1;
    }
    int threads = 2, repeats = 11;
    bool quick = false;
    std::string json_path = "iabn-bench.json";
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
            return argv[++i];
        };
        if (a == "--threads") threads = std::stoi(value());
        else if (a == "--repeats") repeats = std::max(3, std::stoi(value()));
        else if (a == "--quick") quick = true;
        else if (a == "--json") json_path = value();
        else {
            std::fprintf(stderr, "usage: iabn-bench [--threads 2] [--repeats 11] [--quick] [--json FILE]\n");
            return a == "--help" ? 0 : 2;
        }
    }
    if (quick) repeats = 3;
    iabn::set_num_threads(threads);
    omp_set_num_threads(threads);

    char date[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&t));
    std::string command;
    for (int i = 0; i < argc; i++) command += (i ? " " : "") + std::string(argv[i]);
    std::printf("iabn-bench  %s  %s, %d threads, kernels %s\ncommand: %s\n", date, cpu_model().c_str(), threads,
                iabn::kernel_target().c_str(), command.c_str());
    std::printf("f32, leaky_relu(0.01); medians of %d interleaved runs, caches flushed before each\n\n", repeats);
    std::printf("%-16s %-22s %-6s %-10s %9s %9s %7s %8s\n", "shape", "", "layout", "pass", "iabn ms", "floor ms", "ratio",
                "GB/s");

    CacheFlush flush;
    std::vector<Row> rows;
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const std::vector<Shape> shapes = quick ? std::vector<Shape>{kShapes[1], kShapes[6]} : kShapes;
    for (const Shape& sh : shapes) {
        for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            std::vector<int64_t> shape = sh.nchw;
            if (layout == iabn::Layout::nhwc) {  // the same tensor, channels last
                shape.erase(shape.begin() + 1);
                shape.push_back(sh.nchw[1]);
            }
            const int64_t channels = sh.nchw[1];
            // Rank 2 is channels-last whatever the declared layout: one run of it is enough.
            const bool channels_last = layout == iabn::Layout::nhwc || sh.nchw.size() == 2;
            if (sh.nchw.size() == 2 && layout == iabn::Layout::nhwc) continue;
            size_t n = 1;
            for (int64_t d : shape) n *= static_cast<size_t>(d);
            const double bytes = double(n) * sizeof(float);

            std::vector<float> x0(n), x(n), dz0(n), dz(n), w(channels, 1.0f), b(channels, 0.0f), rm(channels, 0.0f),
                rv(channels, 1.0f), sm(channels), si(channels), wg(channels), bg(channels);
            for (size_t i = 0; i < n; i++) {
                x0[i] = 0.5f + normal(rng);
                dz0[i] = normal(rng);
            }
            auto ch = [&](std::vector<float>& v) { return iabn::TensorRef{v.data(), iabn::DType::f32, {channels}}; };
            const iabn::ChannelState state{ch(w), ch(b), ch(rm), ch(rv), ch(sm), ch(si)};
            const iabn::ParamGrads grads{ch(wg), ch(bg)};
            iabn::Options train;
            train.activation = iabn::Activation::leaky_relu;
            train.activation_param = 0.01;
            train.layout = layout;
            iabn::Options global = train;
            global.training = false;
            const iabn::TensorRef tx{x.data(), iabn::DType::f32, shape}, tdz{dz.data(), iabn::DType::f32, shape};

            // One timed run of `f`, after restoring the tensors and flushing the caches (not timed).
            auto timed = [&](const std::function<void()>& f) {
                std::memcpy(x.data(), x0.data(), n * sizeof(float));
                std::memcpy(dz.data(), dz0.data(), n * sizeof(float));
                flush();
                const double start = now();
                f();
                return now() - start;
            };
            double sink = 0;
            std::vector<double> fwd, fwd_floor, glob, glob_floor, bwd, bwd_floor;
            for (int r = 0; r < repeats + 1; r++) {
                const double a = timed([&] { iabn::forward(tx, state, train); });
                const double a_floor = timed([&] {
                    if (channels_last) sink += bench::floor_read(x.data(), n);
                    bench::floor_scale(x.data(), n);
                });
                const double g = timed([&] { iabn::forward(tx, state, global); });
                const double g_floor = timed([&] { bench::floor_scale(x.data(), n); });
                iabn::forward(tx, state, train);  // z and the saved statistics for the backward
                const std::vector<float> z = x;
                // The backward reads z (not x0): restore it by hand rather than through timed().
                std::memcpy(x.data(), z.data(), n * sizeof(float));
                std::memcpy(dz.data(), dz0.data(), n * sizeof(float));
                flush();
                double start = now();
                iabn::backward(tx, tdz, state, grads, train);
                const double bd = now() - start;
                std::memcpy(dz.data(), dz0.data(), n * sizeof(float));
                flush();
                start = now();
                if (channels_last) sink += bench::floor_read(x.data(), n) + bench::floor_read(dz.data(), n);
                bench::floor_combine(dz.data(), x.data(), n);
                const double bd_floor = now() - start;
                if (r == 0) continue;  // warm-up
                fwd.push_back(a);
                fwd_floor.push_back(a_floor);
                glob.push_back(g);
                glob_floor.push_back(g_floor);
                bwd.push_back(bd);
                bwd_floor.push_back(bd_floor);
            }
            if (sink == 12345.678) std::printf(" ");  // keeps the floor reads alive
            const std::string layout_name = sh.nchw.size() == 2 ? "rank2" : iabn::to_string(layout);
            auto add = [&](const char* op, const std::vector<double>& t_iabn, const std::vector<double>& t_floor,
                           double passes) {
                Row row{sh.name, shape_text(shape), layout_name, op, median(t_iabn) * 1e3, median(t_floor) * 1e3, passes,
                        bytes};
                std::printf("%-16s %-22s %-6s %-10s %9.3f %9.3f %7.2f %8.1f\n", row.shape_name.c_str(), row.shape.c_str(),
                            row.layout.c_str(), row.op.c_str(), row.iabn_ms, row.floor_ms, row.iabn_ms / row.floor_ms,
                            passes * bytes / (row.iabn_ms * 1e-3) / 1e9);
                rows.push_back(row);
            };
            add("fwd-train", fwd, fwd_floor, channels_last ? 3 : 2);
            add("fwd-global", glob, glob_floor, 2);
            add("bwd-train", bwd, bwd_floor, channels_last ? 5 : 3);
            std::fflush(stdout);
        }
    }

    std::ofstream json(json_path);
    json << "{\n  \"date\": \"" << date << "\",\n  \"cpu\": \"" << cpu_model() << "\",\n  \"threads\": " << threads
         << ",\n  \"kernel_target\": \"" << iabn::kernel_target() << "\",\n  \"command\": \"" << command
         << "\",\n  \"repeats\": " << repeats << ",\n  \"rows\": [\n";
    for (size_t i = 0; i < rows.size(); i++) {
        const Row& r = rows[i];
        json << "    {\"shape_name\": \"" << r.shape_name << "\", \"shape\": \"" << r.shape << "\", \"layout\": \""
             << r.layout << "\", \"pass\": \"" << r.op << "\", \"iabn_ms\": " << r.iabn_ms << ", \"floor_ms\": "
             << r.floor_ms << ", \"floor_passes\": " << r.floor_passes << ", \"ratio\": " << r.iabn_ms / r.floor_ms
             << ", \"tensor_bytes\": " << r.bytes_per_pass << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    json << "  ]\n}\n";
    std::printf("\nwrote %s\n", json_path.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench: %s\n", e.what());
    return 1;
}
