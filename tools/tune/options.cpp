#include "options.h"

#include "cpu.h"      // iabn_sched::dispatch_level
#include "machine.h"  // bench/machine.h: cache_flush_bytes()
#include "util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace iabn_tune {

// Defaults the build passes in (tools/tune/CMakeLists.txt).
#ifndef IABN_DEFAULT_PARAMS_FILE
#define IABN_DEFAULT_PARAMS_FILE "schedules/x86.params"
#endif
#ifndef IABN_KERNEL_FEATURES
#define IABN_KERNEL_FEATURES ""
#endif

namespace {

const char* kUsage = R"(usage: iabn-tune [options]

Searches the schedule numbers each pipeline reads (block, rows, vectors, tasks_per_thread, channels,
unroll, unroll_channels: generators/tunables.h) of
the iabn CPU schedules for one dispatch level with Halide's JIT, on real tensors, and writes the
lines it tuned into a params file the AOT build reads (cmake -DIABN_SCHEDULE_PARAMS=FILE). Tuned: the one-pass nchw pipelines (forward_fused, backward_fused) on the nchw shapes
and the two-pass pipelines (forward_stats + forward_apply, backward_reduce + backward_apply) on the
channels-last shapes (nhwc and rank 2), as the runtime picks them.

  --level L           the dispatch level to tune (schedules/dispatch_levels.def); the candidates
                      are compiled for the build's kernel target of that level, as the AOT kernels
                      are (default: the first level this machine runs, as the dispatch picks it);
                      the lines written name this level
  --target T          a Halide target to compile for instead (its level names the lines)
  --shapes LIST       comma-separated shapes, dims joined by 'x', ':nchw' or ':nhwc' (default nchw)
                      default: 32x256x56x56:nchw,32x56x56x256:nhwc,32x2048x7x7:nchw,8x64x56x56:nchw,4096x1024
  --dtype D           f32 (default), f64, f16 or bf16: the dtype the timings use; the lines written
                      apply to every dtype (f32, f64) or to that 16-bit dtype only (f16, bf16)
  --budget B          search budget for all passes together: N measured candidates, or Ns / Nm of
                      wall time (default 60); candidates whose code is identical to one already
                      measured are free
  --threads N         kernel threads (HL_NUM_THREADS; default 2)
  --repeats N         timed runs per shape, the median is kept (default 5); --warmup N (default 1)
  --flush-mb N        memory read between runs to evict the tensors from cache (default: twice the
                      last-level cache, at least 64 MB, as iabn-bench; 0: off)
  --margin F          relative gain a move must show to be taken (default 0.02)
  --tolerance F       norm-wise relative error allowed against the committed output (default 1e-5
                      for f32, 1e-10 for f64, 1e-5 + 2^-11 for f16, 1e-5 + 2^-8 for bf16)
  --tunables LIST     only search these GeneratorParams (default: block,rows,vectors,
                      tasks_per_thread,channels,unroll,unroll_channels: those each generator reads)
  --passes LIST       only these passes: fwd-1p-nchw,bwd-1p-nchw,fwd-2p-nhwc,bwd-2p-nhwc,
                      fwd-2p-nchw,bwd-2p-nchw (default: those the shapes use)
  --params FILE       the numbers to start from and compare with (default: the build's
                      IABN_SCHEDULE_PARAMS)
  --output FILE       where to write the file with the tuned lines (default: --params FILE); only
                      the lines of the level whose chosen numbers differ from what it took are
                      written or replaced, each with notes on where they come from
  --dry-run           print the new file instead of writing it
  --autoschedulers L  adams2019,mullapudi2016,li2018 (default: all three) or none
  --save-schedules D  write each autoscheduler's schedule source into directory D
  --seed N            random data seed (default 1)
  --help
)";

// The check's tolerance for a dtype. 16-bit kernels compute in f32 (the f32 budget) and round
// each stored element to 16 bits: a candidate whose f32 result differs from the reference's in
// the last bits can round an element to the neighbouring 16-bit value, so one rounding of the
// format (its unit roundoff: 2^-11 for f16, 2^-8 for bf16) is allowed on top.
double default_tolerance(const std::string& dtype) {
    const double f32_budget = 1e-5;
    if (dtype == "f64") return 1e-10;
    if (dtype == "f16") return f32_budget + std::ldexp(1.0, -11);
    if (dtype == "bf16") return f32_budget + std::ldexp(1.0, -8);
    return f32_budget;
}

}  // namespace

// The build's kernel target of a dispatch level (the first this machine runs when `level` is
// empty), with IABN_KERNEL_FEATURES (large_buffers: 64-bit index math, which changes the code):
// the candidates are compiled as the AOT kernels of that level are.
namespace {

Halide::Target level_target(const std::string& level) {
    const Halide::Target host = Halide::get_host_target();
    auto runs_here = [&host](const Halide::Target& isa) {
        for (int f = 0; f < Halide::Target::FeatureEnd; f++) {
            const auto feature = static_cast<Halide::Target::Feature>(f);
            if (isa.has_feature(feature) && !host.has_feature(feature)) return false;
        }
        return true;
    };
    std::string levels;
    for (const std::string& t : split(IABN_KERNEL_TARGETS, ',')) {
        const Halide::Target isa(t);
        const std::string l = iabn_sched::dispatch_level(isa);
        levels += (levels.empty() ? "" : ", ") + l;
        if (!level.empty() && l != level) continue;
        if (!runs_here(isa)) {
            if (level.empty()) continue;  // as the dispatch passes it by
            throw std::invalid_argument("this machine cannot run the " + level + " kernels (" + t + ")");
        }
        std::string with_features = t;
        for (const auto& f : split(IABN_KERNEL_FEATURES, ',')) with_features += "-" + f;
        if (!Halide::Target::validate_target_string(with_features))
            throw std::invalid_argument("bad kernel target " + with_features);
        return Halide::Target(with_features);
    }
    throw std::invalid_argument(level.empty() ? std::string("this machine runs none of the kernel targets ") +
                                                    IABN_KERNEL_TARGETS
                                              : "--level " + level + ": the build's levels are " + levels);
}

}  // namespace

Options parse(int argc, char** argv) {
    Options o;
    o.params = IABN_DEFAULT_PARAMS_FILE;
    o.flush_mb = static_cast<int64_t>(bench::cache_flush_bytes() >> 20);
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
        else if (a == "--level")
            o.level = value();
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
                if (s == "none") continue;
                const auto& all = autoschedulers();
                const auto it = std::find_if(all.begin(), all.end(), [&](Scheduler a) { return option_name(a) == s; });
                if (it == all.end()) throw std::invalid_argument("unknown autoscheduler " + s);
                o.autoschedulers.push_back(*it);
            }
        } else if (a == "--save-schedules")
            o.save_schedules = value();
        else if (a == "--seed")
            o.seed = std::stoull(value());
        else
            throw std::invalid_argument("unknown option " + a + " (see --help)");
    }
    if (o.dtype != "f32" && o.dtype != "f64" && o.dtype != "f16" && o.dtype != "bf16")
        throw std::invalid_argument("--dtype must be f32, f64, f16 or bf16");
    if (o.threads < 1 || o.repeats < 1 || o.warmup < 0) throw std::invalid_argument("bad --threads/--repeats/--warmup");
    if (o.tolerance < 0) o.tolerance = default_tolerance(o.dtype);
    if (target.empty()) {
        o.target = level_target(o.level);
    } else {
        if (!Halide::Target::validate_target_string(target)) throw std::invalid_argument("bad --target " + target);
        o.target = Halide::Target(target);
        if (!o.level.empty() && o.level != iabn_sched::dispatch_level(o.target))
            throw std::invalid_argument("--target " + target + " is of level " + iabn_sched::dispatch_level(o.target) +
                                        ", not --level " + o.level);
    }
    o.level = iabn_sched::dispatch_level(o.target);
    for (const auto& s : split(shapes, ',')) o.shapes.push_back(parse_shape(s));
    if (o.output.empty()) o.output = o.params;
    return o;
}

}  // namespace iabn_tune
