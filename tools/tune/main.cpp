// iabn-tune: searches the tunable GeneratorParams of the iabn CPU schedules (struct CpuParams in
// schedules/cpu.h) for one dispatch level by compiling candidates with Halide's JIT and timing them
// on real shapes, checks every candidate against the output of the numbers the level takes,
// compares the result with Halide's Adams2019, Mullapudi2016 and Li2018 autoschedulers, and writes the
// lines it tuned into a params file. See README.md. The parts: options (command line), passes
// (what is tuned), measure (candidates compiled, checked, timed), search, report, params_file.
#include "harness.h"
#include "measure.h"
#include "options.h"
#include "params_file.h"
#include "passes.h"
#include "report.h"
#include "search.h"
#include "util.h"
#include "floor.h"   // bench/floor.h: check_floor_variants()
#include "timing.h"  // bench/timing.h: keep_openmp_threads_passive()

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace iabn_tune;

namespace {

// Prints the error as iabn-tune's and returns `code` (the exit status).
int fail(const std::exception& e, int code) {
    std::fprintf(stderr, "iabn-tune: %s\n", e.what());
    return code;
}

// What the run will do: the level, the budget, each pass and its shapes.
void print_plan(const Options& o, const std::vector<Pass>& passes) {
    std::printf("iabn-tune: level %s (target %s), dtype %s, %d threads, median of %d runs after %d warm-up, flush %lld MB\n",
                o.level.c_str(), o.target.to_string().c_str(), o.dtype.c_str(), o.threads, o.repeats, o.warmup,
                static_cast<long long>(o.flush_mb));
    std::printf("  params: %s; budget: %s\n", o.params.c_str(),
                o.budget_seconds > 0 ? (fmt("%.0f", o.budget_seconds) + " s").c_str()
                                     : (std::to_string(o.budget_candidates) + " measured candidates").c_str());
    for (const Pass& p : passes) {
        std::string s;
        for (size_t i : p.shapes) s += (s.empty() ? "" : ", ") + o.shapes[i].label();
        std::printf("  pass %-12s %s: %s\n", p.id.c_str(), p.title.c_str(), s.c_str());
    }
}

// Which tunables each generator has (the generators may gain or lose some).
std::map<std::string, std::vector<std::string>> tunables_of(const Options& o, const std::vector<Pass>& passes) {
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
    return tunables;
}

// Autoscheduler plugins: they register themselves with libHalide when loaded. Returns why each
// one that did not load failed.
std::map<Scheduler, std::string> load_autoschedulers(const Options& o) {
    std::map<Scheduler, std::string> plugin_error;
    for (Scheduler s : o.autoschedulers) {
        try {
            Halide::load_plugin(plugin_path(s));
        } catch (const std::exception& e) {
            plugin_error[s] = "plugin not loaded: " + first_line(e.what());
        }
    }
    return plugin_error;
}

// The tensors' storage type and the per-channel buffers' type, as the library has them
// (generators/types.h, element_types(): 16-bit tensors keep f32 per-channel buffers).
Halide::Type storage_type(const std::string& dtype) {
    return dtype == "f64"    ? Halide::Float(64)
           : dtype == "f16"  ? Halide::Float(16)
           : dtype == "bf16" ? Halide::BFloat(16)
                             : Halide::Float(32);
}
Halide::Type channel_type(const std::string& dtype) { return dtype == "f64" ? Halide::Float(64) : Halide::Float(32); }

// The numbers the level takes for each generator of the pass, less any its generator does not
// declare (an older file), timed first: their outputs become the references. False (and the
// error printed) where they cannot be.
bool time_committed(Tuner& t, const Pass& pass, const ParamsFile& committed_file, const Options& o,
                    PassResult& result) {
    try {
        for (const std::string& g : pass.generators) {
            for (const auto& [name, value] : committed_file.lookup(g, o.level, pass.layout, o.dtype)) {
                if (has_generator_param(g, name, o.target)) result.committed[g][name] = value;
            }
            const Eval& e = t.reference(g, result.committed[g]);
            std::string ms;
            for (const auto& r : e.shapes) ms += (ms.empty() ? "" : " ") + fmt("%.2f", r.ms);
            std::printf("  reference %s %s: %s ms (compile %.1f s)\n", g.c_str(),
                        to_string(result.committed[g]).c_str(), ms.c_str(), e.compile_s);
        }
    } catch (const std::exception& e) {
        fail(e, 1);
        return false;
    }
    return true;
}

// Does the gain hold up when re-timed side by side with the committed numbers? If not (or if
// there is none), the committed numbers are kept.
void confirm_best(Tuner& t, PassResult& result) {
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
}

void print_chosen(const Pass& pass, const PassResult& result) {
    for (const std::string& g : pass.generators) {
        std::printf("  chosen: %s %s%s\n", g.c_str(), to_string(result.best.at(g)).c_str(),
                    result.kept_committed ? (" (committed kept: " + result.why_kept + ")").c_str() : "");
    }
}

// One autoscheduler on one shape: each generator of the pass scheduled with that shape as the
// estimates, compiled, checked and timed. Adds the shape's cell (the total time, "incorrect" or
// "failed") and note (why not a time) to `result`.
void time_autoscheduled(Tuner& t, const Pass& pass, Scheduler s, Dataset& data, const std::string& label,
                        const std::string& plugin_error, const Scalars& scalars, const RunOptions& ro,
                        const Options& o, PassResult& result) {
    double total = 0;
    std::string failure = plugin_error;
    for (const std::string& g : pass.generators) {
        if (!failure.empty()) break;
        try {
            BuildOptions b = t.build_options({}, s);
            b.estimates = &data.shape();
            auto c = build(g, b);
            if (!o.save_schedules.empty()) {
                std::string shape = label;
                std::replace(shape.begin(), shape.end(), ' ', '_');
                std::ofstream(o.save_schedules + "/" + g + "_" + shape + "." + to_string(s) + ".schedule.h")
                    << c->schedule_source;
            }
            ShapeResult r = run(*c, data, scalars, ro, false);
            std::printf("  %s %s %s: scheduled in %.1f s, compiled in %.1f s: %s\n", to_string(s), g.c_str(),
                        label.c_str(), c->schedule_s, c->compile_s,
                        r.ok ? (fmt("%.2f", r.ms) + " ms, err " + fmt("%.1e", r.rel_error)).c_str() : r.error.c_str());
            if (!r.ok) failure = g + ": " + first_line(r.error);
            total += r.ms;
        } catch (const std::exception& e) {
            failure = g + ": does not compile: " + first_line(e.what());
            std::printf("  %s %s %s: %s\n", to_string(s), g.c_str(), label.c_str(), failure.c_str());
        }
    }
    result.auto_cells[s].push_back(failure.empty()                                  ? fmt("%.2f", total)
                                   : failure.find("incorrect") != std::string::npos ? "incorrect"
                                                                                    : "failed");
    result.auto_notes[s].push_back(failure);
}

// The budget, shared out among the passes: each takes its share of what is left.
struct Budget {
    double search_start = now_s();
    int64_t spent = 0;  // measured candidates so far
};

// One pass: the committed numbers, the search, the side-by-side check, the floor of each shape
// (timed the same way: the yardstick of the final table) and Halide's autoschedulers on the same
// pipelines, timed and checked the same way. Nothing where the committed numbers cannot be timed.
std::optional<PassResult> tune_pass(const Options& o, const std::vector<Pass>& passes, size_t pi, const ParamsFile& committed_file,
                     const std::map<std::string, std::vector<std::string>>& tunables,
                     const std::map<Scheduler, std::string>& plugin_error, const Scalars& scalars, Budget& budget) {
    const Pass& pass = passes[pi];
    std::printf("\n== %s (%s)\n", pass.id.c_str(), pass.title.c_str());
    std::vector<std::unique_ptr<Dataset>> data;
    std::vector<std::string> labels;
    for (size_t i : pass.shapes) {
        data.push_back(std::make_unique<Dataset>(o.shapes[i], storage_type(o.dtype), channel_type(o.dtype), o.seed + i));
        labels.push_back(o.shapes[i].label());
    }
    Tuner t(o, pass, data, scalars);
    PassResult result;
    result.pass = &pass;
    if (!time_committed(t, pass, committed_file, o, result)) return std::nullopt;

    const size_t left = passes.size() - pi;
    const double deadline = now_s() + (o.budget_seconds - (now_s() - budget.search_start)) / left;
    const int64_t limit = (o.budget_candidates - budget.spent) / static_cast<int64_t>(left);
    search(t, pass, tunables, result, limit, deadline, o);
    budget.spent += t.measured;
    confirm_best(t, result);
    print_chosen(pass, result);

    RunOptions ro;
    ro.warmup = o.warmup, ro.repeats = o.repeats, ro.flush_bytes = o.flush_mb << 20, ro.tolerance = o.tolerance;
    for (auto& d : data) result.floor_ms.push_back(floor_ms(*d, pass.id.rfind("bwd", 0) == 0, ro));
    std::printf("  floor: %s ms\n", join_ms(result.floor_ms).c_str());

    for (Scheduler s : o.autoschedulers) {
        const auto error = plugin_error.find(s);
        for (size_t i = 0; i < data.size(); i++) {
            time_autoscheduled(t, pass, s, *data[i], labels[i], error != plugin_error.end() ? error->second : "",
                               scalars, ro, o, result);
        }
    }
    return result;
}

// ---- The params file: a line of this level for each tuned generator whose chosen numbers
// differ from those the level took; the other lines stay as they were. Returns the exit status.
int write_params(const Options& o, const ParamsFile& committed_file, const std::vector<PassResult>& results) {
    const std::vector<TunedLine> lines = tuned_lines(o, results);
    if (lines.empty()) std::printf("  no line to write: %s stays as it was\n", o.params.c_str());
    const std::string text = render(committed_file, lines);
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
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    bench::keep_openmp_threads_passive(argv);  // the floor loops and the cache flush run on OpenMP
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    // First, before any Halide work and before any thread exists (see harness.h).
    start_code_key_server();
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        return fail(e, 2);
    }
    try {
        bench::check_floor_variants();  // every floor loop does the whole work (as iabn-bench checks)
    } catch (const std::exception& e) {
        return fail(e, 1);
    }
    // The JIT runtime's thread pool reads HL_NUM_THREADS when it starts (at the first run).
    setenv("HL_NUM_THREADS", std::to_string(o.threads).c_str(), 1);
    now_s();

    ParamsFile committed_file;
    try {
        committed_file = ParamsFile::read(o.params);
    } catch (const std::exception& e) {
        return fail(e, 2);
    }
    const std::vector<Pass> passes = make_passes(o);
    Scalars scalars;
    scalars.threads = o.threads;
    print_plan(o, passes);
    if (passes.empty()) {
        std::fprintf(stderr, "iabn-tune: no pass to tune\n");
        return 2;
    }
    const auto tunables = tunables_of(o, passes);
    const auto plugin_error = load_autoschedulers(o);

    std::vector<PassResult> results;
    Budget budget;
    for (size_t pi = 0; pi < passes.size(); pi++) {
        std::optional<PassResult> result = tune_pass(o, passes, pi, committed_file, tunables, plugin_error, scalars, budget);
        if (!result) return 1;
        results.push_back(*result);
    }
    print_results(o, results);
    if (const int status = write_params(o, committed_file, results)) return status;
    std::printf("iabn-tune: done in %.0f s\n", now_s());
    return 0;
}
