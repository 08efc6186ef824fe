// iabn-tune: searches the tunable GeneratorParams of the iabn CPU schedules (struct CpuParams in
// schedules/cpu.h) by compiling candidates with Halide's JIT and timing them on real shapes, checks
// every candidate against the committed numbers' output, compares the result with Halide's
// Adams2019 and Mullapudi2016 autoschedulers, and rewrites schedules/<arch>.params. See README.md.
#include "harness.h"
#include "params_file.h"

#include <HalideRuntime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace iabn_tune;

namespace {

#ifndef IABN_DEFAULT_PARAMS_FILE
#define IABN_DEFAULT_PARAMS_FILE "schedules/x86.params"
#endif
#ifndef IABN_ADAMS2019_PLUGIN
#define IABN_ADAMS2019_PLUGIN "libautoschedule_adams2019.so"
#endif
#ifndef IABN_MULLAPUDI2016_PLUGIN
#define IABN_MULLAPUDI2016_PLUGIN "libautoschedule_mullapudi2016.so"
#endif
#ifndef IABN_KERNEL_FEATURES
#define IABN_KERNEL_FEATURES ""
#endif

const char* kUsage = R"(usage: iabn-tune [options]

Searches block, rows, vectors, tasks_per_thread (and channels, where the generators have it) of
the iabn CPU schedules with Halide's JIT, on real tensors, and rewrites the params file the AOT
build reads. Tuned: the one-pass nchw pipelines (forward_fused, backward_fused) on the nchw shapes
and the two-pass pipelines (forward_stats + forward_apply, backward_reduce + backward_apply) on the
channels-last shapes (nhwc and rank 2), as the runtime picks them.

  --target T          Halide target to compile for (default: host, plus the build's
                      IABN_KERNEL_FEATURES, as the AOT kernels are compiled)
  --shapes LIST       comma-separated shapes, dims joined by 'x', ':nchw' or ':nhwc' (default nchw)
                      default: 32x256x56x56:nchw,32x56x56x256:nhwc,32x2048x7x7:nchw,8x64x56x56:nchw,4096x1024
  --dtype D           f32 (default) or f64: the dtype the timings use; lines are written for every dtype
  --budget B          search budget for all passes together: N measured candidates, or Ns / Nm of
                      wall time (default 60); candidates whose code is identical to one already
                      measured are free
  --threads N         kernel threads (HL_NUM_THREADS; default 2)
  --repeats N         timed runs per shape, the median is kept (default 5); --warmup N (default 1)
  --flush-mb N        memory read between runs to evict the tensors from cache (default 64; 0: off)
  --margin F          relative gain a move must show to be taken (default 0.02)
  --tolerance F       norm-wise relative error allowed against the committed output (default 1e-5
                      for f32, 1e-10 for f64)
  --tunables LIST     only search these GeneratorParams (default: block,rows,vectors,
                      tasks_per_thread,channels, those each generator has)
  --passes LIST       only these passes: fwd-1p-nchw,bwd-1p-nchw,fwd-2p-nhwc,bwd-2p-nhwc,
                      fwd-2p-nchw,bwd-2p-nchw (default: those the shapes use)
  --params FILE       the committed numbers: start point and baseline (default: the build's file)
  --output FILE       where to write the new numbers (default: --params FILE)
  --dry-run           print the new file instead of writing it
  --autoschedulers L  adams2019,mullapudi2016 (default) or none
  --save-schedules D  write each autoscheduler's schedule source into directory D
  --seed N            random data seed (default 1)
  --help
)";

struct Options {
    Halide::Target target;
    std::vector<Shape> shapes;
    std::string dtype = "f32";
    int64_t budget_candidates = 60;
    double budget_seconds = 0;  // > 0: a time budget instead
    int threads = 2, repeats = 5, warmup = 1;
    int64_t flush_mb = 64;
    double margin = 0.02, tolerance = -1;
    std::set<std::string> passes, tunables;
    std::string params = IABN_DEFAULT_PARAMS_FILE, output;
    bool dry_run = false;
    std::vector<Scheduler> autoschedulers = {Scheduler::adams2019, Scheduler::mullapudi2016};
    std::string save_schedules;
    uint64_t seed = 1;
    std::string command;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, sep);) {
        if (!part.empty()) out.push_back(part);
    }
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 0; i < argc; i++) o.command += (i ? " " : "") + std::string(argv[i]);
    std::string target, shapes = "32x256x56x56:nchw,32x56x56x256:nhwc,32x2048x7x7:nchw,8x64x56x56:nchw,4096x1024";
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else if (a == "--target")
            target = value();
        else if (a == "--shapes")
            shapes = value();
        else if (a == "--dtype")
            o.dtype = value();
        else if (a == "--budget") {
            const std::string b = value();
            const double v = std::stod(b);
            if (b.back() == 's')
                o.budget_seconds = v;
            else if (b.back() == 'm')
                o.budget_seconds = 60 * v;
            else
                o.budget_candidates = static_cast<int64_t>(v);
        } else if (a == "--threads")
            o.threads = std::stoi(value());
        else if (a == "--repeats")
            o.repeats = std::stoi(value());
        else if (a == "--warmup")
            o.warmup = std::stoi(value());
        else if (a == "--flush-mb")
            o.flush_mb = std::stoll(value());
        else if (a == "--margin")
            o.margin = std::stod(value());
        else if (a == "--tolerance")
            o.tolerance = std::stod(value());
        else if (a == "--tunables")
            for (const auto& p : split(value(), ',')) o.tunables.insert(p);
        else if (a == "--passes")
            for (const auto& p : split(value(), ',')) o.passes.insert(p);
        else if (a == "--params")
            o.params = value();
        else if (a == "--output")
            o.output = value();
        else if (a == "--dry-run")
            o.dry_run = true;
        else if (a == "--autoschedulers") {
            o.autoschedulers.clear();
            for (const auto& s : split(value(), ',')) {
                if (s == "adams2019")
                    o.autoschedulers.push_back(Scheduler::adams2019);
                else if (s == "mullapudi2016")
                    o.autoschedulers.push_back(Scheduler::mullapudi2016);
                else if (s != "none")
                    throw std::invalid_argument("unknown autoscheduler " + s);
            }
        } else if (a == "--save-schedules")
            o.save_schedules = value();
        else if (a == "--seed")
            o.seed = std::stoull(value());
        else
            throw std::invalid_argument("unknown option " + a + " (see --help)");
    }
    if (o.dtype != "f32" && o.dtype != "f64") throw std::invalid_argument("--dtype must be f32 or f64");
    if (o.threads < 1 || o.repeats < 1 || o.warmup < 0) throw std::invalid_argument("bad --threads/--repeats/--warmup");
    if (o.tolerance < 0) o.tolerance = o.dtype == "f32" ? 1e-5 : 1e-10;
    if (target.empty()) {
        // The AOT kernels are compiled with IABN_KERNEL_FEATURES (large_buffers: 64-bit index
        // math), which changes the code: the candidates must be compiled the same way.
        std::string t = Halide::get_host_target().to_string();
        for (const auto& f : split(IABN_KERNEL_FEATURES, ',')) t += "-" + f;
        if (!Halide::Target::validate_target_string(t)) throw std::invalid_argument("bad default target " + t);
        o.target = Halide::Target(t);
    } else {
        if (!Halide::Target::validate_target_string(target)) throw std::invalid_argument("bad --target " + target);
        o.target = Halide::Target(target);
    }
    for (const auto& s : split(shapes, ',')) o.shapes.push_back(parse_shape(s));
    if (o.output.empty()) o.output = o.params;
    return o;
}

double now_s() {
    static const auto t0 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// The gist of a Halide error message, on one line.
std::string first_line(const std::string& s, size_t max = 160) {
    std::string line;
    std::stringstream ss(s);
    for (std::string l; std::getline(ss, l);) {
        if (l.find_first_not_of(" \t") != std::string::npos && l != "Error:") {
            line = l;
            break;
        }
    }
    // "Internal Error at /build/.../Halide.h:13494 triggered by user code at : Condition failed: ..."
    if (line.rfind("Internal Error", 0) == 0) {
        if (auto c = line.find("Condition failed"); c != std::string::npos)
            line = "Halide internal error: " + line.substr(c);
    }
    while (!line.empty() && (line.back() == ' ' || line.back() == ':')) line.pop_back();
    return line.size() > max ? line.substr(0, max) + "..." : line;
}

// ---------------------------------------------------------------------------------------------
// Passes: what the runtime runs for a shape (runtime/forward.cpp, backward.cpp, kernels.cpp).

struct Pass {
    std::string id;      // fwd-1p-nchw, ...
    std::string title;   // "forward, one pass, nchw"
    std::string layout;  // the kernels' (view) layout
    std::vector<std::string> generators;
    std::vector<size_t> shapes;  // indexes into Options::shapes
};

std::vector<Pass> make_passes(const Options& o) {
    std::vector<Pass> passes;
    auto add = [&](const std::string& id, const std::string& title, const std::string& layout,
                   std::vector<std::string> gens, size_t shape) {
        for (Pass& p : passes) {
            if (p.id == id) {
                p.shapes.push_back(shape);
                return;
            }
        }
        passes.push_back({id, title, layout, std::move(gens), {shape}});
    };
    // Two sweeps so that forward passes come before backward ones in each group.
    for (size_t i = 0; i < o.shapes.size(); i++) {
        const Shape& s = o.shapes[i];
        const bool one_pass = s.view_layout == "nchw" && s.c >= o.threads;  // detail::use_fused
        const std::string l = s.view_layout;
        if (one_pass) {
            add("fwd-1p-nchw", "forward, one pass, nchw", l, {"forward_fused"}, i);
            add("bwd-1p-nchw", "backward, one pass, nchw", l, {"backward_fused"}, i);
        } else {
            add("fwd-2p-" + l, "forward, two passes, " + l, l, {"forward_stats", "forward_apply"}, i);
            add("bwd-2p-" + l, "backward, two passes, " + l, l, {"backward_reduce", "backward_apply"}, i);
        }
    }
    std::stable_sort(passes.begin(), passes.end(), [](const Pass& a, const Pass& b) {
        auto rank = [](const Pass& p) {
            return (p.id.find("2p") != std::string::npos ? 2 : 0) + (p.id[0] == 'b' ? 1 : 0);
        };
        return rank(a) < rank(b);
    });
    if (!o.passes.empty()) {
        std::vector<Pass> kept;
        for (const Pass& p : passes) {
            if (o.passes.count(p.id)) kept.push_back(p);
        }
        passes = kept;
    }
    return passes;
}

// The search space of each tunable (schedules/cpu.h, struct CpuParams).
const std::vector<std::pair<std::string, std::vector<int>>>& space() {
    static const std::vector<std::pair<std::string, std::vector<int>>> s = {
        // block: elements per task (one-pass and element-wise kernels), or of one row per task
        // (nchw reductions): up to 2^20, since a one-pass task may hold several whole channels.
        {"block", {1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576}},
        {"rows", {8, 16, 32, 64, 128, 256, 512, 1024}},
        {"vectors", {1, 2, 4}},
        {"tasks_per_thread", {2, 4, 8, 16}},
        {"channels", {1, 2, 4, 8, 16, 32, 64, 128}},
        {"unroll", {1, 2, 4, 8}},
        {"unroll_channels", {256, 512, 1024, 2048}},
    };
    return s;
}

// ---------------------------------------------------------------------------------------------
// Evaluation of candidates, cached by parameters and by generated code.

struct Eval {
    bool ok = false;
    std::string error;
    std::string code;     // key of its lowered code
    std::string same_as;  // the candidate whose code this one shares, if any
    std::vector<ShapeResult> shapes;
    std::shared_ptr<Compiled> compiled;
    double compile_s = 0;
};

// A candidate of a pass: the params of each of its generators.
using Assignment = std::map<std::string, ParamValues>;

class Tuner {
public:
    Tuner(const Options& o, const Pass& pass, std::vector<std::unique_ptr<Dataset>>& data, const Scalars& scalars)
        : o_(o), pass_(pass), data_(data), scalars_(scalars) {
        run_.warmup = o.warmup;
        run_.repeats = o.repeats;
        run_.flush_bytes = o.flush_mb << 20;
        run_.tolerance = o.tolerance;
    }

    int64_t measured = 0;

    BuildOptions build_options(const ParamValues& p, Scheduler s = Scheduler::manual) const {
        BuildOptions b;
        b.target = o_.target;
        b.dtype = o_.dtype;
        b.layout = pass_.layout;
        b.params = p;
        b.scheduler = s;
        b.machine = Halide::MachineParams(o_.threads, 32000000, 40);
        return b;
    }

    // The committed numbers: run first, their outputs become the references.
    const Eval& reference(const std::string& gen, const ParamValues& p) {
        Eval e;
        std::string code;
        try {
            code = code_key(gen, build_options(p));
            e.compiled = build(gen, build_options(p));
            e.compile_s = e.compiled->compile_s;
        } catch (const std::exception& ex) {
            throw std::runtime_error("the committed numbers of " + gen + " do not compile: " + first_line(ex.what()));
        }
        e.ok = true;
        for (size_t i = 0; i < data_.size(); i++) {
            e.shapes.push_back(run(*e.compiled, *data_[i], scalars_, run_, /*reference=*/true));
            if (!e.shapes.back().ok)
                throw std::runtime_error("the committed " + gen + " fails: " + e.shapes.back().error);
        }
        e.code = code;
        by_code_[gen + "|" + code] = key(gen, p);
        return by_params_[key(gen, p)] = e;
    }

    const Eval& evaluate(const std::string& gen, const ParamValues& p) {
        const std::string k = key(gen, p);
        if (auto it = by_params_.find(k); it != by_params_.end()) return it->second;
        Eval e;
        std::string code;
        try {
            code = code_key(gen, build_options(p));
        } catch (const std::exception& ex) {
            e.error = "does not compile: " + first_line(ex.what());
            return by_params_[k] = e;
        }
        if (auto it = by_code_.find(gen + "|" + code); it != by_code_.end()) {
            e = by_params_.at(it->second);
            e.same_as = it->second.substr(it->second.find('|') + 1);
            return by_params_[k] = e;
        }
        measured++;
        e.code = code;
        try {
            e.compiled = build(gen, build_options(p));
        } catch (const std::exception& ex) {
            e.error = "does not compile: " + first_line(ex.what());
            return by_params_[k] = e;
        }
        e.compile_s = e.compiled->compile_s;
        e.ok = true;
        // Correctness on every shape (one run each); the timing is done in pairs (paired()).
        RunOptions once = run_;
        once.warmup = 0, once.repeats = 1;
        for (size_t i = 0; i < data_.size() && e.ok; i++) {
            e.shapes.push_back(run(*e.compiled, *data_[i], scalars_, once, false));
            if (!e.shapes.back().ok) e.ok = false, e.error = e.shapes.back().error;
        }
        by_code_[gen + "|" + code] = k;
        return by_params_[k] = e;
    }

    // Times two versions of one pipeline against each other: per shape, a warm-up run of each,
    // then `repeats` rounds of one run of each, alternating, so that the machine's load (shared
    // with other work) weighs on both alike. Per shape: the median times and the median of the
    // per-round ratios b / a. Cached by the pair of codes.
    struct Paired {
        std::vector<double> a_ms, b_ms, ratio;
    };
    Paired paired(const std::string& gen, const Eval& a, const Eval& b, bool fresh = false, int rounds = 0) {
        const std::string k = gen + "|" + a.code + "|" + b.code;
        if (auto it = paired_.find(k); it != paired_.end() && !fresh) return it->second;
        Paired p;
        RunOptions once = run_;
        once.warmup = 0, once.repeats = 1, once.check = false;
        for (size_t i = 0; i < data_.size(); i++) {
            std::vector<double> ta, tb, r;
            for (int round = -o_.warmup; round < (rounds > 0 ? rounds : o_.repeats); round++) {
                const ShapeResult x = run(*a.compiled, *data_[i], scalars_, once, false);
                const ShapeResult y = run(*b.compiled, *data_[i], scalars_, once, false);
                if (round < 0) continue;
                ta.push_back(x.ms), tb.push_back(y.ms), r.push_back(y.ms / x.ms);
            }
            p.a_ms.push_back(median(ta)), p.b_ms.push_back(median(tb)), p.ratio.push_back(median(r));
        }
        return paired_[k] = p;
    }

    static double median(std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? NAN : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    }

    // Pass time per shape: the sum of its pipelines (empty if any fails).
    std::vector<double> pass_ms(const Assignment& a) {
        std::vector<double> t(data_.size(), 0);
        for (const std::string& g : pass_.generators) {
            const Eval& e = evaluate(g, a.at(g));
            if (!e.ok) return {};
            for (size_t i = 0; i < t.size(); i++) t[i] += e.shapes[i].ms;
        }
        return t;
    }

    // Geometric mean over the shapes of time / baseline time.
    static double score(const std::vector<double>& t, const std::vector<double>& base) {
        if (t.empty()) return INFINITY;
        double log_sum = 0;
        for (size_t i = 0; i < t.size(); i++) log_sum += std::log(t[i] / base[i]);
        return std::exp(log_sum / t.size());
    }

    // Re-times the given assignments alternately, `rounds` times, and returns per assignment and
    // shape the median over the rounds: drift of the machine's load hits all of them alike.
    std::vector<std::vector<double>> retime(const std::vector<Assignment>& as, int rounds) {
        std::vector<std::vector<std::vector<double>>> samples(as.size(),
                                                              std::vector<std::vector<double>>(data_.size()));
        for (int r = 0; r < rounds; r++) {
            for (size_t a = 0; a < as.size(); a++) {
                for (size_t i = 0; i < data_.size(); i++) {
                    double sum = 0;
                    for (const std::string& g : pass_.generators) {
                        const Eval& e = evaluate(g, as[a].at(g));  // cached: compiled (or shared) already
                        ShapeResult res = run(*e.compiled, *data_[i], scalars_, run_, false);
                        sum += res.ok ? res.ms : NAN;
                    }
                    samples[a][i].push_back(sum);
                }
            }
        }
        std::vector<std::vector<double>> out(as.size(), std::vector<double>(data_.size()));
        for (size_t a = 0; a < as.size(); a++) {
            for (size_t i = 0; i < data_.size(); i++) {
                auto v = samples[a][i];
                std::sort(v.begin(), v.end());
                out[a][i] = v[v.size() / 2];
            }
        }
        return out;
    }

private:
    static std::string key(const std::string& gen, const ParamValues& p) { return gen + "|" + to_string(p); }

    const Options& o_;
    const Pass& pass_;
    std::vector<std::unique_ptr<Dataset>>& data_;
    const Scalars& scalars_;
    RunOptions run_;
    std::map<std::string, Eval> by_params_;
    std::map<std::string, std::string> by_code_;  // gen|code key -> by_params_ key
    std::map<std::string, Paired> paired_;
};

std::string join_ms(const std::vector<double>& t) {
    std::string out;
    for (double v : t) out += (out.empty() ? "" : " ") + fmt("%.2f", v);
    return out;
}

// Results of one pass, for the final table and the params file.
struct PassResult {
    const Pass* pass = nullptr;
    Assignment committed, best;
    bool kept_committed = false;
    std::string why_kept;
    std::vector<double> committed_ms, best_ms;
    std::map<Scheduler, std::vector<std::string>> auto_cells;  // per shape: time or status
    std::map<Scheduler, std::vector<std::string>> auto_notes;  // per shape: why not a time
};

// Coordinate descent from the committed numbers: one tunable of one pipeline at a time, every
// value of it (nearest first), each timed against the incumbent in pairs; the best value wins if
// the pass gets faster by the margin, confirmed by a second paired measurement.
void search(Tuner& t, const Pass& pass, const std::map<std::string, std::vector<std::string>>& tunables,
            PassResult& result, int64_t limit, double deadline, const Options& o) {
    Assignment current = result.committed;
    std::map<std::string, const Eval*> inc;             // the incumbent of each pipeline
    std::map<std::string, std::vector<double>> inc_ms;  // its latest times per shape
    for (const std::string& g : pass.generators) {
        inc[g] = &t.evaluate(g, current[g]);
        for (const ShapeResult& r : inc[g]->shapes) inc_ms[g].push_back(r.ms);
    }
    result.committed_ms = t.pass_ms(current);
    double cur_score = 1.0;  // the incumbent's time / the committed numbers' time
    std::printf("  committed: %s ms\n", join_ms(result.committed_ms).c_str());

    // The pass's ratio when pipeline g's time goes from a to b (per shape), the others unchanged.
    auto pass_ratio = [&](const std::string& g, const Tuner::Paired& p) {
        double log_sum = 0;
        for (size_t i = 0; i < p.ratio.size(); i++) {
            double others = 0;
            for (const std::string& h : pass.generators) {
                if (h != g) others += inc_ms[h][i];
            }
            log_sum += std::log((others + p.a_ms[i] * p.ratio[i]) / (others + p.a_ms[i]));
        }
        return std::exp(log_sum / p.ratio.size());
    };
    auto out_of_budget = [&] { return o.budget_seconds > 0 ? now_s() >= deadline : t.measured >= limit; };

    // The coordinates, visited in turn until every one has been tried since the last move (at
    // most three rounds).
    std::vector<std::pair<std::string, std::string>> coords;
    for (const std::string& g : pass.generators) {
        for (const std::string& name : tunables.at(g)) coords.emplace_back(g, name);
    }
    int n = 0;
    size_t since_move = 0;
    for (size_t step = 0; step < 3 * coords.size() && since_move < coords.size() && !out_of_budget(); step++) {
        const auto& [g, name] = coords[step % coords.size()];
        since_move++;
        const std::vector<int>* values = nullptr;
        for (const auto& [k, v] : space()) {
            if (k == name) values = &v;
        }
        if (!values) continue;
        // Nearest values first: when the budget runs out mid-coordinate, the neighbours
        // of the current value have been tried.
        std::vector<int> order = *values;
        if (auto it = current[g].find(name); it != current[g].end()) {
            const double at = std::log2(std::max(1, std::stoi(it->second)));
            std::stable_sort(order.begin(), order.end(),
                             [&](int a, int b) { return std::fabs(std::log2(a) - at) < std::fabs(std::log2(b) - at); });
        }
        const Eval* best = nullptr;
        ParamValues best_params;
        double best_ratio = 1.0;
        for (int v : order) {
            if (current[g].count(name) && current[g][name] == std::to_string(v)) continue;
            if (out_of_budget()) break;
            ParamValues cand = current[g];
            cand[name] = std::to_string(v);
            const Eval& e = t.evaluate(g, cand);
            n++;
            std::string line = "  [" + pass.id + " #" + std::to_string(n) + "] " + g + " " + to_string(cand) + ": ";
            if (!e.ok) {
                line += "REJECTED, " + e.error;
            } else if (e.code == inc[g]->code) {
                line += "same code as the incumbent";
            } else {
                const Tuner::Paired p = t.paired(g, *inc[g], e);
                inc_ms[g] = p.a_ms;
                const double r = pass_ratio(g, p);
                double err = 0;
                for (const auto& s : e.shapes) err = std::max(err, s.rel_error);
                line += join_ms(p.b_ms) + " ms (incumbent " + join_ms(p.a_ms) + "): pass x" + fmt("%.3f", r) + ", x" +
                        fmt("%.3f", cur_score * r) + " the committed";
                line += e.same_as.empty()
                            ? "  [compiled in " + fmt("%.1f", e.compile_s) + " s, err " + fmt("%.1e", err) + "]"
                            : "  [same code as " + e.same_as + "]";
                if (r < best_ratio) best_ratio = r, best = &e, best_params = cand;
            }
            line += "  best x" + fmt("%.3f", cur_score * std::min(1.0, best_ratio));
            std::printf("%s\n", line.c_str());
        }
        if (best && best_ratio < 1 - o.margin) {
            // The best of several noisy measurements looks better than it is: measure
            // it again, a fresh pairing twice as long, and move only if the gain holds.
            const Tuner::Paired fresh = t.paired(g, *inc[g], *best, /*fresh=*/true, 2 * o.repeats);
            const double r2 = pass_ratio(g, fresh);
            if (r2 < 1 - o.margin) {
                current[g] = best_params;
                inc[g] = best;
                inc_ms[g] = fresh.b_ms;
                cur_score *= r2;
                since_move = 1;  // this coordinate is done; the others are tried again
                std::printf("  -> %s %s=%s (confirmed x%.3f; x%.3f the committed)\n", g.c_str(), name.c_str(),
                            current[g][name].c_str(), r2, cur_score);
            } else {
                std::printf("  (%s %s=%s not confirmed: x%.3f when re-timed)\n", g.c_str(), name.c_str(),
                            best_params[name].c_str(), r2);
            }
        }
    }
    result.best = current;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    // First, before any Halide work and before any thread exists (see harness.h).
    start_code_key_server();
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "iabn-tune: %s\n", e.what());
        return 2;
    }
    // The JIT runtime's thread pool reads HL_NUM_THREADS when it starts (at the first run).
    setenv("HL_NUM_THREADS", std::to_string(o.threads).c_str(), 1);
    now_s();

    ParamsFile committed_file;
    try {
        committed_file = ParamsFile::read(o.params);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "iabn-tune: %s\n", e.what());
        return 2;
    }
    const std::vector<Pass> passes = make_passes(o);
    Scalars scalars;
    scalars.threads = o.threads;

    std::printf("iabn-tune: target %s, dtype %s, %d threads, median of %d runs after %d warm-up, flush %lld MB\n",
                o.target.to_string().c_str(), o.dtype.c_str(), o.threads, o.repeats, o.warmup,
                static_cast<long long>(o.flush_mb));
    std::printf("  params: %s; budget: %s\n", o.params.c_str(),
                o.budget_seconds > 0 ? (fmt("%.0f", o.budget_seconds) + " s").c_str()
                                     : (std::to_string(o.budget_candidates) + " measured candidates").c_str());
    for (const Pass& p : passes) {
        std::string s;
        for (size_t i : p.shapes) s += (s.empty() ? "" : ", ") + o.shapes[i].label();
        std::printf("  pass %-12s %s: %s\n", p.id.c_str(), p.title.c_str(), s.c_str());
    }
    if (passes.empty()) {
        std::fprintf(stderr, "iabn-tune: no pass to tune\n");
        return 2;
    }

    // Which tunables each generator has (the generators may gain or lose some).
    std::map<std::string, std::vector<std::string>> tunables;
    for (const Pass& p : passes) {
        for (const std::string& g : p.generators) {
            if (tunables.count(g)) continue;
            for (const auto& [name, values] : space()) {
                if (!o.tunables.empty() && !o.tunables.count(name)) continue;
                if (has_generator_param(g, name, o.target)) tunables[g].push_back(name);
            }
        }
    }

    // Autoscheduler plugins: they register themselves with libHalide when loaded.
    std::map<Scheduler, std::string> plugin_error;
    for (Scheduler s : o.autoschedulers) {
        const char* path = s == Scheduler::adams2019 ? IABN_ADAMS2019_PLUGIN : IABN_MULLAPUDI2016_PLUGIN;
        try {
            Halide::load_plugin(path);
        } catch (const std::exception& e) {
            plugin_error[s] = "plugin not loaded: " + first_line(e.what());
        }
    }

    const Halide::Type storage = o.dtype == "f32" ? Halide::Float(32) : Halide::Float(64);
    std::vector<PassResult> results;
    const double search_start = now_s();
    int64_t spent = 0;  // measured candidates so far
    for (size_t pi = 0; pi < passes.size(); pi++) {
        const Pass& pass = passes[pi];
        std::printf("\n== %s (%s)\n", pass.id.c_str(), pass.title.c_str());
        std::vector<std::unique_ptr<Dataset>> data;
        std::vector<std::string> labels;
        for (size_t i : pass.shapes) {
            data.push_back(std::make_unique<Dataset>(o.shapes[i], storage, storage, o.seed + i));
            labels.push_back(o.shapes[i].label());
        }
        Tuner t(o, pass, data, scalars);
        PassResult result;
        result.pass = &pass;
        try {
            for (const std::string& g : pass.generators) {
                result.committed[g] = committed_file.lookup(g, pass.layout, o.dtype);
                const Eval& e = t.reference(g, result.committed[g]);
                std::string ms;
                for (const auto& r : e.shapes) ms += (ms.empty() ? "" : " ") + fmt("%.2f", r.ms);
                std::printf("  reference %s %s: %s ms (compile %.1f s)\n", g.c_str(),
                            to_string(result.committed[g]).c_str(), ms.c_str(), e.compile_s);
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "iabn-tune: %s\n", e.what());
            return 1;
        }

        // This pass's share of what is left of the budget.
        const size_t left = passes.size() - pi;
        const double deadline = now_s() + (o.budget_seconds - (now_s() - search_start)) / left;
        const int64_t limit = (o.budget_candidates - spent) / static_cast<int64_t>(left);
        search(t, pass, tunables, result, limit, deadline, o);
        spent += t.measured;

        // Does the gain hold up when re-timed side by side with the committed numbers?
        if (result.best != result.committed) {
            const auto ms = t.retime({result.committed, result.best}, 3);
            result.committed_ms = ms[0];
            result.best_ms = ms[1];
            const double s = Tuner::score(ms[1], ms[0]);
            std::printf("  re-timed side by side: committed %s ms, best %s ms: x%.3f\n", join_ms(ms[0]).c_str(),
                        join_ms(ms[1]).c_str(), s);
            if (!(s < 1.0)) {
                result.kept_committed = true;
                result.why_kept = "the gain did not hold up when re-timed";
                result.best = result.committed;
                result.best_ms = result.committed_ms;
            }
        } else {
            result.best_ms = result.committed_ms;
            result.kept_committed = true;
            result.why_kept = "no candidate beat the committed numbers by the margin";
        }
        for (const std::string& g : pass.generators) {
            std::printf("  chosen: %s %s%s\n", g.c_str(), to_string(result.best.at(g)).c_str(),
                        result.kept_committed ? (" (committed kept: " + result.why_kept + ")").c_str() : "");
        }

        // Halide's autoschedulers on the same pipelines, timed and checked the same way; each
        // shape gets its own schedule, made with that shape as the estimates.
        RunOptions ro;
        ro.warmup = o.warmup, ro.repeats = o.repeats, ro.flush_bytes = o.flush_mb << 20, ro.tolerance = o.tolerance;
        for (Scheduler s : o.autoschedulers) {
            for (size_t i = 0; i < data.size(); i++) {
                double total = 0;
                std::string failure = plugin_error.count(s) ? plugin_error[s] : "";
                for (const std::string& g : pass.generators) {
                    if (!failure.empty()) break;
                    try {
                        BuildOptions b = t.build_options({}, s);
                        b.estimates = &data[i]->shape();
                        auto c = build(g, b);
                        if (!o.save_schedules.empty()) {
                            std::string shape = labels[i];
                            std::replace(shape.begin(), shape.end(), ' ', '_');
                            std::ofstream(o.save_schedules + "/" + g + "_" + shape + "." + to_string(s) + ".schedule.h")
                                << c->schedule_source;
                        }
                        ShapeResult r = run(*c, *data[i], scalars, ro, false);
                        std::printf("  %s %s %s: scheduled in %.1f s, compiled in %.1f s: %s\n", to_string(s),
                                    g.c_str(), labels[i].c_str(), c->schedule_s, c->compile_s,
                                    r.ok ? (fmt("%.2f", r.ms) + " ms, err " + fmt("%.1e", r.rel_error)).c_str()
                                         : r.error.c_str());
                        if (!r.ok) failure = g + ": " + first_line(r.error);
                        total += r.ms;
                    } catch (const std::exception& e) {
                        failure = g + ": does not compile: " + first_line(e.what());
                        std::printf("  %s %s %s: %s\n", to_string(s), g.c_str(), labels[i].c_str(), failure.c_str());
                    }
                }
                result.auto_cells[s].push_back(failure.empty()                                  ? fmt("%.2f", total)
                                               : failure.find("incorrect") != std::string::npos ? "incorrect"
                                                                                                : "failed");
                result.auto_notes[s].push_back(failure);
            }
        }
        results.push_back(result);
    }

    // ---- The table.
    std::printf("\n== Result (ms per pass, median; pass = sum of its pipelines; target %s, %s, %d threads)\n",
                o.target.to_string().c_str(), o.dtype.c_str(), o.threads);
    std::printf("%-12s %-20s %10s %18s %12s %14s\n", "pass", "shape", "committed", "best", "Adams2019",
                "Mullapudi2016");
    for (const PassResult& r : results) {
        for (size_t j = 0; j < r.pass->shapes.size(); j++) {
            const std::string best =
                fmt("%.2f", r.best_ms[j]) + " (x" + fmt("%.2f", r.best_ms[j] / r.committed_ms[j]) + ")";
            auto cell = [&](Scheduler s) -> std::string {
                auto it = r.auto_cells.find(s);
                return it == r.auto_cells.end() ? "(not run)" : it->second[j];
            };
            std::printf("%-12s %-20s %10.2f %18s %12s %14s\n", r.pass->id.c_str(),
                        o.shapes[r.pass->shapes[j]].label().c_str(), r.committed_ms[j], best.c_str(),
                        cell(Scheduler::adams2019).c_str(), cell(Scheduler::mullapudi2016).c_str());
        }
    }
    for (const PassResult& r : results) {
        for (const auto& [s, notes] : r.auto_notes) {
            for (size_t j = 0; j < notes.size(); j++) {
                if (!notes[j].empty()) {
                    std::printf("  %s %s %s: %s\n", r.pass->id.c_str(), o.shapes[r.pass->shapes[j]].label().c_str(),
                                to_string(s), notes[j].c_str());
                }
            }
        }
    }
    for (const PassResult& r : results) {
        for (const std::string& g : r.pass->generators) {
            std::printf("  %-12s %-16s committed: %-55s chosen: %s\n", r.pass->id.c_str(), g.c_str(),
                        to_string(r.committed.at(g)).c_str(), to_string(r.best.at(g)).c_str());
        }
    }

    // ---- The params file: one line per generator and layout the build instantiates.
    std::vector<TunedLine> lines;
    const std::vector<std::pair<std::string, std::vector<std::string>>> built = {
        {"forward_stats", {"nchw", "nhwc"}},   {"forward_apply", {"nchw", "nhwc"}},
        {"backward_reduce", {"nchw", "nhwc"}}, {"backward_apply", {"nchw", "nhwc"}},
        {"forward_fused", {"nchw"}},           {"backward_fused", {"nchw"}}};
    for (const auto& [g, layouts] : built) {
        for (const std::string& l : layouts) {
            TunedLine line{g, l, committed_file.lookup(g, l, o.dtype), ""};
            const PassResult* from = nullptr;
            for (const PassResult& r : results) {
                if (r.pass->layout == l && r.best.count(g)) from = &r;
            }
            if (from) {
                for (const auto& [k, v] : from->best.at(g)) line.values[k] = v;
                std::string shapes;
                for (size_t i : from->pass->shapes) shapes += (shapes.empty() ? "" : ", ") + o.shapes[i].label();
                line.comment = from->pass->id + " on " + shapes + ": x" +
                               fmt("%.3f", Tuner::score(from->best_ms, from->committed_ms)) + " the previous time" +
                               (from->kept_committed ? " (previous numbers kept)" : "");
            } else {
                line.comment = "not tuned in this run: the previous numbers";
            }
            lines.push_back(line);
        }
    }
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));
    std::string shapes;
    for (const Shape& s : o.shapes) shapes += (shapes.empty() ? "" : ", ") + s.label();
    const std::vector<std::string> provenance = {
        "# Written by iabn-tune on " + std::string(date) + ", target " + o.target.to_string() + ", shapes " + shapes +
            ", command: " + o.command,
        "#   iabn-tune timed " + o.dtype + " with " + std::to_string(o.threads) +
            " threads, leaky_relu(0.01); the lines apply to every dtype; see tools/tune/README.md"};
    const std::string text = render(committed_file, provenance, lines);
    if (o.dry_run) {
        std::printf("\n== %s (dry run: not written)\n%s", o.output.c_str(), text.c_str());
    } else {
        std::ofstream out(o.output);
        out << text;
        if (!out) {
            std::fprintf(stderr, "iabn-tune: cannot write %s\n", o.output.c_str());
            return 1;
        }
        std::printf("\nwrote %s\n", o.output.c_str());
    }
    std::printf("iabn-tune: done in %.0f s\n", now_s());
    return 0;
}
