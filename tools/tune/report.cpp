#include "report.h"

#include "machine.h"  // bench/machine.h: cpu_model()
#include "util.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <unistd.h>

namespace iabn_tune {

namespace {

// The machine, as the notes of a tuned line name it.
std::string machine_name() {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return bench::cpu_model() + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores" +
           (l3 > 0 ? ", " + std::to_string(l3 >> 20) + " MB L3" : "");
}

}  // namespace

void print_results(const Options& o, const std::vector<PassResult>& results) {
    std::printf("\n== Result (ms per pass, median; pass = sum of its pipelines; (xN): N times the floor; level %s, "
                "target %s, %s, %d threads)\n",
                o.level.c_str(), o.target.to_string().c_str(), o.dtype.c_str(), o.threads);
    std::printf("%-12s %-20s %7s %16s %16s", "pass", "shape", "floor", "committed", "best");
    for (Scheduler s : autoschedulers()) std::printf(" %16s", to_string(s));
    std::printf("\n");
    for (const PassResult& r : results) {
        for (size_t j = 0; j < r.pass->shapes.size(); j++) {
            const double floor = r.floor_ms[j];
            auto cell = [&](double ms) { return fmt("%.2f", ms) + " (x" + fmt("%.2f", ms / floor) + ")"; };
            auto auto_cell = [&](Scheduler s) -> std::string {
                auto it = r.auto_cells.find(s);
                if (it == r.auto_cells.end()) return "(not run)";
                const std::string& c = it->second[j];
                char* end = nullptr;
                const double ms = std::strtod(c.c_str(), &end);
                return end != c.c_str() && *end == '\0' ? cell(ms) : c;
            };
            std::printf("%-12s %-20s %7.2f %16s %16s", r.pass->id.c_str(), o.shapes[r.pass->shapes[j]].label().c_str(),
                        floor, cell(r.committed_ms[j]).c_str(), cell(r.best_ms[j]).c_str());
            for (Scheduler s : autoschedulers()) std::printf(" %16s", auto_cell(s).c_str());
            std::printf("\n");
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
}

std::vector<TunedLine> tuned_lines(const Options& o, const std::vector<PassResult>& results) {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));
    // An f32 (or f64) run's numbers are written for every dtype, as before. A 16-bit run moves half
    // the bytes and converts every element, so its numbers hold for its dtype only: its lines name
    // the dtype, and the build's rule (the line naming the most wins) gives them to it alone.
    const std::string dtype = o.dtype == "f16" || o.dtype == "bf16" ? o.dtype : "*";
    std::vector<TunedLine> lines;
    std::printf("\n");
    for (const PassResult& r : results) {
        for (const std::string& g : r.pass->generators) {
            const ParamValues& chosen = r.best.at(g);
            if (chosen == r.committed.at(g)) {
                std::printf("  %s %s %s: kept what it took (%s)\n", g.c_str(), o.level.c_str(), r.pass->layout.c_str(),
                            r.kept_committed ? r.why_kept.c_str() : "no candidate was faster");
                continue;
            }
            std::string shapes;
            for (size_t i : r.pass->shapes) shapes += (shapes.empty() ? "" : ", ") + o.shapes[i].label();
            lines.push_back({g, o.level, r.pass->layout, dtype, chosen,
                             {"iabn-tune on " + std::string(date) + " (" + machine_name() + ", " +
                                  std::to_string(o.threads) + " threads, " + o.dtype + "): " + r.pass->id + " on " +
                                  shapes + ": x" + fmt("%.3f", Tuner::score(r.best_ms, r.committed_ms)) +
                                  " the time of " + to_string(r.committed.at(g)) + ", re-timed side by side",
                              "command: " + o.command}});
        }
    }
    return lines;
}

}  // namespace iabn_tune
