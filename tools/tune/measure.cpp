#include "measure.h"

#include "util.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace iabn_tune {

Tuner::Tuner(const Options& o, const Pass& pass, std::vector<std::unique_ptr<Dataset>>& data, const Scalars& scalars)
    : o_(o), pass_(pass), data_(data), scalars_(scalars) {
    run_.warmup = o.warmup;
    run_.repeats = o.repeats;
    run_.flush_bytes = o.flush_mb << 20;
    run_.tolerance = o.tolerance;
}

BuildOptions Tuner::build_options(const ParamValues& p, Scheduler s) const {
    BuildOptions b;
    b.target = o_.target;
    b.dtype = o_.dtype;
    b.layout = pass_.layout;
    b.params = p;
    b.scheduler = s;
    b.machine.parallelism = o_.threads;
    return b;
}

const Eval& Tuner::reference(const std::string& gen, const ParamValues& p) {
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

const Eval& Tuner::evaluate(const std::string& gen, const ParamValues& p) {
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

Tuner::Paired Tuner::paired(const std::string& gen, const Eval& a, const Eval& b, bool fresh, int rounds) {
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

double Tuner::median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? NAN : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::vector<double> Tuner::pass_ms(const Assignment& a) {
    std::vector<double> t(data_.size(), 0);
    for (const std::string& g : pass_.generators) {
        const Eval& e = evaluate(g, a.at(g));
        if (!e.ok) return {};
        for (size_t i = 0; i < t.size(); i++) t[i] += e.shapes[i].ms;
    }
    return t;
}

double Tuner::score(const std::vector<double>& t, const std::vector<double>& base) {
    if (t.empty()) return INFINITY;
    double log_sum = 0;
    for (size_t i = 0; i < t.size(); i++) log_sum += std::log(t[i] / base[i]);
    return std::exp(log_sum / t.size());
}

std::vector<std::vector<double>> Tuner::retime(const std::vector<Assignment>& as, int rounds) {
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

std::string join_ms(const std::vector<double>& t) {
    std::string out;
    for (double v : t) out += (out.empty() ? "" : " ") + fmt("%.2f", v);
    return out;
}

}  // namespace iabn_tune
