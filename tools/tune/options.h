// iabn-tune's command line: what to tune, on which level and shapes, within which budget.
#pragma once

#include "harness.h"

#include <Halide.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace iabn_tune {

struct Options {
    Halide::Target target;
    std::string level;  // the dispatch level tuned
    std::vector<Shape> shapes;
    std::string dtype = "f32";
    int64_t budget_candidates = 60;
    double budget_seconds = 0;  // > 0: a time budget instead
    int threads = 2, repeats = 5, warmup = 1;
    int64_t flush_mb = 0;  // set by parse(): --flush-mb, or twice the last-level cache
    double margin = 0.02, tolerance = -1;
    std::set<std::string> passes, tunables;
    std::string params, output;  // parse() fills in the build's file
    bool dry_run = false;
    std::vector<Scheduler> autoschedulers = iabn_tune::autoschedulers();
    std::string save_schedules;
    uint64_t seed = 1;
    std::string command;
};

// Parses argv (exits after --help); throws std::invalid_argument on a bad option.
Options parse(int argc, char** argv);

}  // namespace iabn_tune
