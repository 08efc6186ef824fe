// iabn-tune's measurements: candidates compiled, checked against the numbers the level takes,
// and timed in pairs, cached by parameters and by generated code.
#pragma once

#include "harness.h"
#include "options.h"
#include "passes.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace iabn_tune {

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
    Tuner(const Options& o, const Pass& pass, std::vector<std::unique_ptr<Dataset>>& data, const Scalars& scalars);

    int64_t measured = 0;

    BuildOptions build_options(const ParamValues& p, Scheduler s = Scheduler::manual) const;

    // The committed numbers: run first, their outputs become the references.
    const Eval& reference(const std::string& gen, const ParamValues& p);

    const Eval& evaluate(const std::string& gen, const ParamValues& p);

    // Times two versions of one pipeline against each other: per shape, a warm-up run of each,
    // then `repeats` rounds of one run of each, alternating, so that the machine's load (shared
    // with other work) weighs on both alike. Per shape: the median times and the median of the
    // per-round ratios b / a. Cached by the pair of codes.
    struct Paired {
        std::vector<double> a_ms, b_ms, ratio;
    };
    Paired paired(const std::string& gen, const Eval& a, const Eval& b, bool fresh = false, int rounds = 0);

    static double median(std::vector<double> v);

    // Pass time per shape: the sum of its pipelines (empty if any fails).
    std::vector<double> pass_ms(const Assignment& a);

    // Geometric mean over the shapes of time / baseline time.
    static double score(const std::vector<double>& t, const std::vector<double>& base);

    // Re-times the given assignments alternately, `rounds` times, and returns per assignment and
    // shape the median over the rounds: drift of the machine's load hits all of them alike.
    std::vector<std::vector<double>> retime(const std::vector<Assignment>& as, int rounds);

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

// Milliseconds, two decimals, space-separated.
std::string join_ms(const std::vector<double>& t);

}  // namespace iabn_tune
