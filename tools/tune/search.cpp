#include "search.h"

#include "util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace iabn_tune {

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

}  // namespace iabn_tune
