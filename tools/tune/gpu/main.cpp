// iabn-tune-gpu: picks the GPU kernels' schedule numbers (schedules/cuda.params, opencl.params) by
// timing prebuilt candidates on the GPU it runs on: no Halide needed there. Each candidate is a
// library kernel built with one other value of one tunable (tools/tune/gpu/CMakeLists.txt); it
// takes its kernel's place in the runtime's dispatch table, and the training pass is called
// through iabn's public API. docs/tuning.md says what it does and how to run it.
#include "candidates.h"
#include "measure.h"
#include "params_file.h"  // tools/tune/params_file.h: the build's rule, and the rewrite
#include "timing.h"       // bench/timing.h: median

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace iabn_tune_gpu;
using iabn_tune::ParamsFile;
using iabn_tune::ParamValues;
using iabn_tune::TunedLine;

namespace {

const char* kUsage = R"(usage: iabn-tune-gpu [options]
  --device cuda|opencl     the GPU API (default: cuda where a CUDA device is present, else opencl)
  --dtypes f32,f16,...     the dtypes tuned (default: every dtype with candidates)
  --layouts nchw,nhwc      (default: both)
  --shapes NxCxHxW,...     logical nchw shapes, each timed in every layout (default: ResNet-50's
                           five stages at batch 32)
  --calls N                back-to-back calls per time (default 20)
  --rounds N               paired rounds per candidate and shape (default 5; the confirmation 2N)
  --margin F               a candidate must be this much faster to be taken (default 0.02: 2%)
  --params FILE            the params file the library was built with (default: the build's)
  --output FILE            where the rewritten file goes (default: --params itself)
  --dry-run                print the rewritten file instead of writing it
  --list                   list the candidates this binary has, and exit
)";

struct Options {
    iabn::Device device = iabn::Device::cuda;
    bool device_given = false;
    std::vector<iabn::DType> dtypes;
    std::vector<iabn::Layout> layouts = {iabn::Layout::nchw, iabn::Layout::nhwc};
    std::vector<Dims> shapes = {{32, 64, 112, 112}, {32, 256, 56, 56}, {32, 512, 28, 28}, {32, 1024, 14, 14},
                                {32, 2048, 7, 7}};
    int calls = 20, rounds = 5;
    double margin = 0.02;
    std::string params, output, command;
    bool dry_run = false, list = false;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, sep);) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

iabn::DType parse_dtype(const std::string& s) {
    for (iabn::DType d : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
        if (s == iabn::to_string(d)) return d;
    }
    throw std::invalid_argument("--dtypes: unknown dtype '" + s + "'");
}

Dims parse_shape(const std::string& s) {
    Dims d;
    for (const std::string& part : split(s, 'x')) d.push_back(std::stoll(part));
    if (d.size() != 4 || std::any_of(d.begin(), d.end(), [](int64_t v) { return v <= 0; }))
        throw std::invalid_argument("--shapes: expected NxCxHxW with positive sizes, got '" + s + "'");
    return d;
}

const char* api_name(iabn::Device d) { return d == iabn::Device::cuda ? "cuda" : "opencl"; }

std::string dims_text(const Dims& d) {
    std::string out;
    for (int64_t v : d) out += (out.empty() ? "" : "x") + std::to_string(v);
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 0; i < argc; i++) o.command += (i ? " " : "") + std::string(argv[i]);
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--device") {
            const std::string v = value(i);
            if (v != "cuda" && v != "opencl") throw std::invalid_argument("--device: cuda or opencl, got '" + v + "'");
            o.device = v == "cuda" ? iabn::Device::cuda : iabn::Device::opencl;
            o.device_given = true;
        } else if (a == "--dtypes") {
            o.dtypes.clear();
            for (const std::string& d : split(value(i), ',')) o.dtypes.push_back(parse_dtype(d));
        } else if (a == "--layouts") {
            o.layouts.clear();
            for (const std::string& l : split(value(i), ',')) {
                if (l != "nchw" && l != "nhwc") throw std::invalid_argument("--layouts: nchw or nhwc, got '" + l + "'");
                o.layouts.push_back(l == "nchw" ? iabn::Layout::nchw : iabn::Layout::nhwc);
            }
        } else if (a == "--shapes") {
            o.shapes.clear();
            for (const std::string& s : split(value(i), ',')) o.shapes.push_back(parse_shape(s));
        } else if (a == "--calls") {
            o.calls = std::max(1, std::stoi(value(i)));
        } else if (a == "--rounds") {
            o.rounds = std::max(1, std::stoi(value(i)));
        } else if (a == "--margin") {
            o.margin = std::stod(value(i));
        } else if (a == "--params") {
            o.params = value(i);
        } else if (a == "--output") {
            o.output = value(i);
        } else if (a == "--dry-run") {
            o.dry_run = true;
        } else if (a == "--list") {
            o.list = true;
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else {
            throw std::invalid_argument("unknown option '" + a + "' (--help lists them)");
        }
    }
    if (o.shapes.empty() || o.layouts.empty()) throw std::invalid_argument("nothing to time: no shape or no layout");
    return o;
}

// The device: the one asked for, or CUDA where there is one, else OpenCL.
iabn_test::TestDevice& pick_device(Options& o) {
    if (!o.device_given && !iabn_test::test_device(iabn::Device::cuda)) o.device = iabn::Device::opencl;
    iabn_test::TestDevice* d = iabn_test::test_device(o.device);
    if (!d) {
        throw std::runtime_error(iabn_test::device_unavailable(o.device));
    }
    return *d;
}

// The value of `t` the library's kernels were built with: its params line's, else the generator's
// default (which the tuner does not know, and never writes).
std::string committed_value(const ParamsFile& f, const Tunable& t, const std::string& api, iabn::Layout layout,
                            iabn::DType dtype) {
    const ParamValues v = f.lookup(t.generator, api, iabn::to_string(layout), iabn::to_string(dtype));
    const auto it = v.find(t.name);
    return it == v.end() ? "default" : it->second;
}

// Per shape, the median over `rounds` of the candidate's time over the library's, the two run
// alternately (which first alternates too), so that the load of a shared machine weighs on both.
struct Paired {
    double ratio = 1;                    // geometric mean over the shapes
    std::vector<double> base_ms, cand_ms;  // per shape, medians
};

Paired time_paired(std::vector<std::unique_ptr<PassBench>>& benches, const Tunable& t, int value, int rounds,
                   int calls, iabn::DType dtype, iabn::Layout layout, iabn::Device device) {
    Paired p;
    double log_sum = 0;
    for (auto& b : benches) {
        std::vector<double> ratios, base, cand;
        for (int r = 0; r < rounds; r++) {
            double tb = 0, tc = 0;
            for (int k = 0; k < 2; k++) {
                const bool candidate_now = (k == 0) == (r % 2 == 1);
                Installed in(t, candidate_now ? value : -1, dtype, layout, device);
                (candidate_now ? tc : tb) = b->time(t.pass, calls);
            }
            ratios.push_back(tc / tb);
            base.push_back(tb);
            cand.push_back(tc);
        }
        p.base_ms.push_back(bench::median(base));
        p.cand_ms.push_back(bench::median(cand));
        log_sum += std::log(bench::median(ratios));
    }
    p.ratio = std::exp(log_sum / static_cast<double>(benches.size()));
    return p;
}

std::string fixed(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    return buf;
}

std::string today() {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));
    return date;
}

void list_candidates() {
    for (const Candidate& c : candidates()) {
        std::printf("%-8s %-5s %-5s %-22s %-20s %s=%d\n", api_name(c.device), iabn::to_string(c.dtype),
                    iabn::to_string(c.layout), c.slot.c_str(), c.generator.c_str(), c.name.c_str(), c.value);
    }
    std::printf("%zu candidates\n", candidates().size());
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "iabn-tune-gpu: %s\n", e.what());
        return 2;
    }
    if (o.list) {
        list_candidates();
        return 0;
    }
    try {
        iabn_test::TestDevice& device = pick_device(o);
        const std::string api = api_name(o.device);
        if (o.params.empty()) o.params = o.device == iabn::Device::cuda ? IABN_CUDA_PARAMS_FILE : IABN_OPENCL_PARAMS_FILE;
        if (o.output.empty()) o.output = o.params;
        const ParamsFile file = ParamsFile::read(o.params);
        if (o.dtypes.empty()) {
            for (iabn::DType d : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
                if (!tunables(d, iabn::Layout::nchw, o.device).empty()) o.dtypes.push_back(d);
            }
        }
        std::string shapes_text;
        for (const Dims& s : o.shapes) shapes_text += (shapes_text.empty() ? "" : ", ") + dims_text(s);
        std::printf("iabn-tune-gpu: %s (%s); %d calls per time, %d paired rounds, margin %.3f\n", api.c_str(),
                    device.name().c_str(), o.calls, o.rounds, o.margin);
        std::printf("  params: %s\n  shapes (logical nchw, each in every layout): %s\n", o.params.c_str(),
                    shapes_text.c_str());

        std::vector<TunedLine> lines;
        int rejected = 0;
        for (iabn::DType dtype : o.dtypes) {
            for (iabn::Layout layout : o.layouts) {
                const std::vector<Tunable> ts = tunables(dtype, layout, o.device);
                if (ts.empty()) {
                    std::printf("\n%s %s: this binary has no candidates (--list)\n", iabn::to_string(dtype),
                                iabn::to_string(layout));
                    continue;
                }
                std::vector<std::unique_ptr<PassBench>> benches;
                for (const Dims& s : o.shapes) benches.push_back(std::make_unique<PassBench>(device, s, dtype, layout));
                for (const Tunable& t : ts) {
                    const std::string committed = committed_value(file, t, api, layout, dtype);
                    std::printf("\n%s %s %s: %s (library: %s), pass %s; ms per call per shape, library / candidate\n",
                                iabn::to_string(dtype), iabn::to_string(layout), t.generator.c_str(), t.name.c_str(),
                                committed.c_str(), t.pass == Pass::forward ? "forward" : "backward");
                    // The library's outputs, then each candidate's: they must agree (a schedule
                    // changes no arithmetic), or the candidate is never taken.
                    std::vector<std::vector<double>> expected;
                    for (auto& b : benches) expected.push_back(b->outputs(t.pass));
                    int best = -1;
                    double best_ratio = 1;
                    for (int v : candidate_values(t, dtype, layout, o.device)) {
                        double worst = 0;
                        for (size_t i = 0; i < benches.size(); i++) {
                            Installed in(t, v, dtype, layout, o.device);
                            worst = std::max(worst, relative_error(benches[i]->outputs(t.pass), expected[i]));
                        }
                        if (!(worst <= tolerance(dtype))) {
                            std::printf("  %s=%-6d REJECTED: outputs differ from the library's by %.3g (tolerance %.3g)\n",
                                        t.name.c_str(), v, worst, tolerance(dtype));
                            rejected++;
                            continue;
                        }
                        const Paired p = time_paired(benches, t, v, o.rounds, o.calls, dtype, layout, o.device);
                        std::string per_shape;
                        for (size_t i = 0; i < benches.size(); i++) {
                            char buf[64];
                            std::snprintf(buf, sizeof buf, " %.4f/%.4f", p.base_ms[i], p.cand_ms[i]);
                            per_shape += buf;
                        }
                        std::printf("  %s=%-6d x%.3f%s\n", t.name.c_str(), v, p.ratio, per_shape.c_str());
                        if (best < 0 || p.ratio < best_ratio) best = v, best_ratio = p.ratio;
                    }
                    if (best < 0 || best_ratio >= 1 - o.margin) {
                        std::printf("  kept %s=%s: no candidate %.0f%% faster\n", t.name.c_str(), committed.c_str(),
                                    100 * o.margin);
                        continue;
                    }
                    // The winner again, twice as long: a lucky first measurement does not get written.
                    const Paired again = time_paired(benches, t, best, 2 * o.rounds, o.calls, dtype, layout, o.device);
                    std::printf("  %s=%d re-timed: x%.3f\n", t.name.c_str(), best, again.ratio);
                    if (again.ratio >= 1 - o.margin) {
                        std::printf("  kept %s=%s: the gain did not hold up\n", t.name.c_str(), committed.c_str());
                        continue;
                    }
                    // The whole line the kernel took, with the new value (a new, more specific line
                    // takes over all of the generator's numbers for its level, layout and dtype).
                    ParamValues values = file.lookup(t.generator, api, iabn::to_string(layout), iabn::to_string(dtype));
                    values[t.name] = std::to_string(best);
                    // As iabn-tune: an f32 or f64 run's numbers go to every dtype, a 16-bit run's to its own.
                    const bool half = dtype == iabn::DType::f16 || dtype == iabn::DType::bf16;
                    lines.push_back({t.generator, api, iabn::to_string(layout), half ? iabn::to_string(dtype) : "*",
                                     values,
                                     {"iabn-tune-gpu on " + today() + " (" + device.name() + ", " +
                                          iabn::to_string(dtype) + "): " + (t.pass == Pass::forward ? "forward" : "backward") +
                                          " on " + shapes_text + ": x" + fixed(again.ratio) +
                                          " the time of " + t.name + "=" + committed + ", re-timed side by side",
                                      "command: " + o.command}});
                }
            }
        }
        const std::string text = iabn_tune::render(file, lines);
        std::printf("\n%zu line(s) tuned, %d candidate(s) rejected\n", lines.size(), rejected);
        if (o.dry_run) {
            std::printf("\n== %s as it would be written\n%s", o.output.c_str(), text.c_str());
        } else if (!lines.empty()) {
            std::ofstream out(o.output);
            out << text;
            if (!out.flush()) throw std::runtime_error("cannot write " + o.output);
            std::printf("written: %s (build with -DIABN_%s_SCHEDULE_PARAMS=%s)\n", o.output.c_str(),
                        api == "cuda" ? "CUDA" : "OPENCL", o.output.c_str());
        }
        return rejected ? 1 : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "iabn-tune-gpu: %s\n", e.what());
        return 1;
    }
}
