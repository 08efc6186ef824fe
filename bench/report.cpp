#include "report.h"
#include "timing.h"

#include "floor.h"
#include "networks.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <tuple>

namespace bench {
namespace {

double gbps(const Row& r) { return r.floor_passes * r.tensor_bytes / (r.iabn_ms * 1e-3) / 1e9; }

// "12.345", "n/a" when oneDNN has no implementation, or "-" when not measured.
std::string ms_or_dash(double ms, const char* format, bool na = false) {
    if (na) return "n/a";
    if (ms <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, format, ms);
    return buf;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    const int n = std::vsnprintf(nullptr, 0, fmt, args);
    va_end(args);
    std::string out(static_cast<size_t>(n) + 1, '\0');
    va_start(args, fmt);
    std::vsnprintf(out.data(), out.size(), fmt, args);
    va_end(args);
    out.pop_back();
    return out;
}

// Runs gnuplot on `script`; false (after saying why) where gnuplot is missing or fails.
bool gnuplot(const std::string& script) {
    FILE* gp = popen("gnuplot 2>&1", "w");
    if (gp == nullptr) {
        std::fprintf(stderr, "iabn-bench: cannot run gnuplot (apt-get install gnuplot-nox): no chart\n");
        return false;
    }
    std::fputs(script.c_str(), gp);
    const int status = pclose(gp);
    if (status != 0) {
        std::fprintf(stderr, "iabn-bench: gnuplot failed (status %d): no chart\n", status);
        return false;
    }
    return true;
}

std::string json_number(double v) {
    if (v <= 0) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// The notes quote oneDNN's messages: quotes and backslashes escaped.
std::string json_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

void print_header(const RunInfo& info) {
    std::printf("iabn-bench  %s  %s, %d threads, kernels %s\ncommand: %s\n", info.date.c_str(), info.cpu.c_str(),
                info.threads, info.kernel_target.c_str(), info.command.c_str());
    std::printf("leaky_relu(0.01); medians of %d interleaved runs, caches flushed before each (%zu MB rewritten); "
                "ratio = iabn / floor; x = the column's library's time / iabn's\n",
                info.repeats, CacheFlush::bytes() >> 20);
    std::printf("memory, 128 MB: read-only pass %.1f GB/s, in-place read+write pass %.1f GB/s (bytes read and "
                "written)\n",
                info.read_gbs, info.read_write_gbs);
    std::string variants;
    for (const std::string& v : floor_variants()) variants += (variants.empty() ? "" : ", ") + v;
    std::printf("floor: per row the fastest of the f32/f64 floor loops compiled for %s (16-bit rows: one loop)\n",
                variants.c_str());
    if (!info.pytorch.empty()) {
        std::printf("%s; PyTorch ms: F.batch_norm + F.leaky_relu_, autograd backward\n", info.pytorch.c_str());
    }
    if (!info.floor_conversions.empty()) {
        std::printf("16-bit rows: their own bytes (half of f32's); the floors load 16 bits, compute in f32, store 16 "
                    "bits, converting with: %s\n",
                    info.floor_conversions.c_str());
    }
    std::printf("\n");
    std::printf("%-16s %-20s %-6s %-4s %-10s %8s %8s %6s %6s %9s %6s %9s %6s %10s %6s\n", "shape", "", "layout", "type",
                "pass", "iabn ms", "floor ms", "ratio", "GB/s", "oneDNN ms", "x", "16c ms", "x", "PyTorch ms", "x");
}

void print_row(const Row& r) {
    auto speedup = [&](double other) { return other > 0 ? ms_or_dash(other / r.iabn_ms, "%.2f") : std::string("-"); };
    std::printf("%-16s %-20s %-6s %-4s %-10s %8.3f %8.3f %6.2f %6.1f %9s %6s %9s %6s %10s %6s\n", r.shape_name.c_str(),
                r.shape.c_str(), r.layout.c_str(), r.dtype.c_str(), r.pass.c_str(), r.iabn_ms, r.floor_ms,
                r.iabn_ms / r.floor_ms, gbps(r), ms_or_dash(r.onednn_ms, "%.3f", r.onednn_na).c_str(),
                speedup(r.onednn_ms).c_str(), ms_or_dash(r.onednn_blocked_ms, "%.3f", r.onednn_blocked_na).c_str(),
                speedup(r.onednn_blocked_ms).c_str(), ms_or_dash(r.pytorch_ms, "%.3f", r.pytorch_na).c_str(),
                speedup(r.pytorch_ms).c_str());
    std::fflush(stdout);
}

std::vector<NetworkTotal> network_totals(const std::vector<Row>& rows) {
    std::vector<NetworkTotal> out;
    std::map<std::string, size_t> at;  // "network layout dtype pass" -> index in out
    for (const Row& r : rows) {
        if (r.network.empty() || r.pass == "fwd-global") continue;
        const std::string key = r.network + " " + r.layout + " " + r.dtype + " " + r.pass;
        if (!at.count(key)) {
            at[key] = out.size();
            out.push_back({r.network, r.layout, r.dtype, r.pass});
        }
        NetworkTotal& t = out[at[key]];
        t.iabn_ms += r.layers * r.iabn_ms;
        t.floor_ms += r.layers * r.floor_ms;
        const double others[3] = {r.onednn_ms, r.onednn_blocked_ms, r.pytorch_ms};
        double* sums[3] = {&t.onednn_ms, &t.onednn_blocked_ms, &t.pytorch_ms};
        // A layer without a time (not run, no implementation) makes the library's total NaN, then 0.
        for (int k = 0; k < 3; k++) *sums[k] += others[k] > 0 ? r.layers * others[k] : std::nan("");
    }
    for (NetworkTotal& t : out) {
        for (double* total : {&t.onednn_ms, &t.onednn_blocked_ms, &t.pytorch_ms}) {
            if (std::isnan(*total)) *total = 0;
        }
    }
    // A training step: the forward's and the backward's totals together (0 where one is missing).
    std::vector<NetworkTotal> steps;
    for (const NetworkTotal& f : out) {
        if (f.pass != "fwd-train") continue;
        const auto b = at.find(f.network + " " + f.layout + " " + f.dtype + " bwd-train");
        if (b == at.end()) continue;
        const NetworkTotal& w = out[b->second];
        auto both = [](double x, double y) { return x > 0 && y > 0 ? x + y : 0; };
        steps.push_back({f.network, f.layout, f.dtype, "step", f.iabn_ms + w.iabn_ms, f.floor_ms + w.floor_ms,
                         both(f.onednn_ms, w.onednn_ms), both(f.onednn_blocked_ms, w.onednn_blocked_ms),
                         both(f.pytorch_ms, w.pytorch_ms)});
    }
    out.insert(out.end(), steps.begin(), steps.end());
    std::stable_sort(out.begin(), out.end(), [](const NetworkTotal& a, const NetworkTotal& b) {
        return std::make_tuple(a.network, a.layout, a.dtype) < std::make_tuple(b.network, b.layout, b.dtype);
    });
    return out;
}

void print_network_totals(const std::vector<NetworkTotal>& totals) {
    std::string network;
    for (const NetworkTotal& t : totals) {
        if (t.network != network) {
            network = t.network;
            const auto& all = networks();
            const auto net = std::find_if(all.begin(), all.end(), [&](const Network& n) { return n.name == network; });
            std::printf("\n%s: every batch-norm layer of a training step (sum over layers of the medians); x = time / "
                        "iabn's\n",
                        net->description.c_str());
            std::printf("%-6s %-4s %-10s %9s %9s %6s %10s %6s %10s %6s %11s %6s\n", "layout", "type", "pass", "iabn ms",
                        "floor ms", "ratio", "oneDNN ms", "x", "16c ms", "x", "PyTorch ms", "x");
        }
        auto x = [&](double ms) { return ms > 0 ? ms_or_dash(ms / t.iabn_ms, "%.2f") : std::string("-"); };
        std::printf("%-6s %-4s %-10s %9.1f %9.1f %6.2f %10s %6s %10s %6s %11s %6s\n", t.layout.c_str(), t.dtype.c_str(),
                    t.pass.c_str(), t.iabn_ms, t.floor_ms, t.iabn_ms / t.floor_ms, ms_or_dash(t.onednn_ms, "%.1f").c_str(),
                    x(t.onednn_ms).c_str(), ms_or_dash(t.onednn_blocked_ms, "%.1f").c_str(),
                    x(t.onednn_blocked_ms).c_str(), ms_or_dash(t.pytorch_ms, "%.1f").c_str(), x(t.pytorch_ms).c_str());
    }
    // The memory kept from forward to backward, per network and element size run.
    std::map<std::string, std::map<std::string, bool>> dtypes;
    for (const NetworkTotal& t : totals) dtypes[t.network][t.dtype] = true;
    std::printf("\nactivation memory kept from a step's forward to its backward (these layers' tensors; networks.h):\n");
    for (const Network& net : networks()) {
        if (!dtypes.count(net.name)) continue;
        for (const auto& [dtype, yes] : dtypes[net.name]) {
            const double bytes = dtype == "f64" ? 8 : dtype == "f32" ? 4 : 2;
            const KeptMemory m = kept_memory(net, bytes);
            std::printf("  %-9s %-4s InPlace-ABN %8.0f MB, batch norm + in-place activation %8.0f MB\n",
                        net.name.c_str(), dtype.c_str(), m.inplace_abn / 1e6, m.bn_activation / 1e6);
        }
    }
}

void write_json(const std::string& path, const RunInfo& info, const std::vector<Row>& rows,
                const std::vector<NetworkTotal>& totals) {
    std::ofstream json(path);
    if (!json) throw std::runtime_error("cannot write " + path);
    json << "{\n  \"date\": \"" << info.date << "\",\n  \"cpu\": \"" << info.cpu << "\",\n  \"threads\": " << info.threads
         << ",\n  \"kernel_target\": \"" << info.kernel_target << "\",\n  \"command\": \"" << info.command
         << "\",\n  \"repeats\": " << info.repeats << ",\n  \"read_gbs\": " << json_number(info.read_gbs)
         << ",\n  \"read_write_gbs\": " << json_number(info.read_write_gbs)
         << ",\n  \"floor_conversions\": \"" << info.floor_conversions << "\",\n  \"pytorch\": \""
         << json_escape(info.pytorch) << "\",\n  \"notes\": [";
    for (size_t i = 0; i < info.notes.size(); i++) {
        json << (i ? ", " : "") << "\"" << json_escape(info.notes[i]) << "\"";
    }
    json << "],\n  \"rows\": [\n";
    for (size_t i = 0; i < rows.size(); i++) {
        const Row& r = rows[i];
        json << "    {\"shape_name\": \"" << r.shape_name << "\", \"shape\": \"" << r.shape << "\", \"layout\": \""
             << r.layout << "\", \"dtype\": \"" << r.dtype << "\", \"pass\": \"" << r.pass
             << "\", \"iabn_ms\": " << json_number(r.iabn_ms) << ", \"floor_ms\": " << json_number(r.floor_ms)
             << ", \"floor_variant\": \"" << r.floor_variant << "\", \"floor_variants_ms\": [";
        for (size_t v = 0; v < r.floor_variants_ms.size(); v++) {
            json << (v ? ", " : "") << json_number(r.floor_variants_ms[v]);
        }
        json << "], \"floor_passes\": " << r.floor_passes << ", \"ratio\": " << json_number(r.iabn_ms / r.floor_ms)
             << ", \"tensor_bytes\": " << r.tensor_bytes << ", \"onednn_ms\": " << json_number(r.onednn_ms)
             << ", \"onednn_nchw16c_ms\": " << json_number(r.onednn_blocked_ms)
             << ", \"pytorch_ms\": " << json_number(r.pytorch_ms)
             << ", \"onednn_na\": " << (r.onednn_na ? "true" : "false")
             << ", \"onednn_nchw16c_na\": " << (r.onednn_blocked_na ? "true" : "false")
             << ", \"pytorch_na\": " << (r.pytorch_na ? "true" : "false") << ", \"network\": \"" << r.network
             << "\", \"layers\": " << r.layers << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    json << "  ],\n  \"network_totals\": [\n";
    for (size_t i = 0; i < totals.size(); i++) {
        const NetworkTotal& t = totals[i];
        json << "    {\"network\": \"" << t.network << "\", \"layout\": \"" << t.layout << "\", \"dtype\": \""
             << t.dtype << "\", \"pass\": \"" << t.pass << "\", \"iabn_ms\": " << json_number(t.iabn_ms)
             << ", \"floor_ms\": " << json_number(t.floor_ms) << ", \"onednn_ms\": " << json_number(t.onednn_ms)
             << ", \"onednn_nchw16c_ms\": " << json_number(t.onednn_blocked_ms)
             << ", \"pytorch_ms\": " << json_number(t.pytorch_ms) << "}" << (i + 1 < totals.size() ? "," : "")
             << "\n";
    }
    json << "  ]\n}\n";
}

bool write_chart(const std::string& png, const RunInfo& info, const std::vector<Row>& rows) {
    // One data line per f32 (shape, layout): the ratios to the floor of the two training passes.
    if (std::none_of(rows.begin(), rows.end(), [](const Row& r) { return r.dtype == "f32"; })) {
        std::fprintf(stderr, "iabn-bench: the chart shows f32 rows, and this run has none: no chart\n");
        return false;
    }
    const std::string dat = png + ".dat";
    {
        std::ofstream out(dat);
        out << "# label iabn_fwd onednn_fwd onednn16c_fwd iabn_bwd onednn_bwd onednn16c_bwd\n";
        for (size_t i = 0; i < rows.size(); i++) {
            const Row& f = rows[i];
            if (f.dtype != "f32" || f.pass != "fwd-train") continue;
            const Row* b = nullptr;
            for (const Row& r : rows) {
                if (r.dtype == f.dtype && r.shape == f.shape && r.layout == f.layout && r.pass == "bwd-train") b = &r;
            }
            if (b == nullptr) continue;
            auto ratio = [](double ms, double floor_ms) { return ms > 0 ? std::to_string(ms / floor_ms) : "?"; };
            out << "\"" << f.shape << " " << f.layout << "\" " << ratio(f.iabn_ms, f.floor_ms) << " "
                << ratio(f.onednn_ms, f.floor_ms) << " " << ratio(f.onednn_blocked_ms, f.floor_ms) << " "
                << ratio(b->iabn_ms, b->floor_ms) << " " << ratio(b->onednn_ms, b->floor_ms) << " "
                << ratio(b->onednn_blocked_ms, b->floor_ms) << "\n";
        }
    }
    return gnuplot(format(
                 "set terminal pngcairo size 1400,900 font ',10'\nset output '%s'\n"
                 "set datafile missing '?'\nset style data histograms\nset style histogram clustered gap 1\n"
                 "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\nset logscale y 2\nset yrange [0.5:*]\n"
                 "set xtics rotate by -30 left\nset key top left\nset ylabel 'time / memory-bandwidth floor (log scale)'\n"
                 "set multiplot layout 2,1 title 'iabn-bench %s, %s, %d threads, f32 (1 = floor)'\n"
                 "set title 'forward (training)'\n"
                 "plot '%s' using 2:xtic(1) title 'iabn', '' using 3 title 'oneDNN bn + eltwise (same layout)', "
                 "'' using 4 title 'oneDNN nChw16c', 1 with lines lw 2 lc 'black' notitle\n"
                 "set title 'backward (training)'\n"
                 "plot '%s' using 5:xtic(1) title 'iabn', '' using 6 title 'oneDNN bn + eltwise (same layout)', "
                 "'' using 7 title 'oneDNN nChw16c', 1 with lines lw 2 lc 'black' notitle\n"
                 "unset multiplot\n",
                 png.c_str(), info.date.c_str(), info.cpu.c_str(), info.threads, dat.c_str(), dat.c_str()));
}

bool write_network_chart(const std::string& png, const RunInfo& info, const std::vector<NetworkTotal>& totals) {
    const std::string dat = png + ".dat";
    {
        std::ofstream out(dat);
        out << "# label iabn onednn onednn16c pytorch (f32 totals / the floor's)\n";
        for (const NetworkTotal& t : totals) {
            if (t.dtype != "f32" || t.pass == "step") continue;
            auto ratio = [&](double ms) { return ms > 0 ? std::to_string(ms / t.floor_ms) : "?"; };
            out << "\"" << t.network << " " << t.layout << " " << (t.pass == "fwd-train" ? "forward" : "backward")
                << "\" " << ratio(t.iabn_ms) << " " << ratio(t.onednn_ms) << " " << ratio(t.onednn_blocked_ms) << " "
                << ratio(t.pytorch_ms) << "\n";
        }
    }
    return gnuplot(format(
        "set terminal pngcairo size 1400,700 font ',10'\nset output '%s'\n"
        "set datafile missing '?'\nset style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\nset logscale y 2\nset yrange [0.5:*]\n"
        "set xtics rotate by -30 left\nset key top left\n"
        "set ylabel 'time of all the network''s BN layers / the floor''s (log scale)'\n"
        "set title 'iabn-bench --network, %s, %s, %d threads, f32: a training step''s batch-norm layers (1 = floor)'\n"
        "plot '%s' using 2:xtic(1) title 'iabn', '' using 3 title 'oneDNN bn + eltwise (same layout)', "
        "'' using 4 title 'oneDNN nChw16c', '' using 5 title 'PyTorch (CPU)', 1 with lines lw 2 lc 'black' notitle\n",
        png.c_str(), info.date.c_str(), info.cpu.c_str(), info.threads, dat.c_str()));
}

}  // namespace bench
