// What iabn-bench prints and writes: the table, the JSON file and the chart.
#pragma once

#include <string>
#include <vector>

namespace bench {

// One pass of one shape and dtype: iabn against its floor and, where measured (training passes,
// f32 and the 16-bit types oneDNN has), oneDNN in the same memory format and in its blocked
// nChw16c format, and PyTorch (training passes of 4-d shapes, when it runs). 0 ms = not measured;
// *_na: that library has no implementation for it (printed n/a).
struct Row {
    std::string shape_name, shape, layout, dtype, pass;
    std::string network;  // --network: the network this shape is a layer of, and of how many layers
    int layers = 0;
    std::string floor_variant;  // the fastest floor variant (floor.h), whose time floor_ms is
    std::vector<double> floor_variants_ms;  // every variant's, in floor_variants()'s order
    double iabn_ms = 0, floor_ms = 0, floor_passes = 0, tensor_bytes = 0;
    double onednn_ms = 0, onednn_blocked_ms = 0;
    double pytorch_ms = 0;
    bool onednn_na = false, onednn_blocked_na = false, pytorch_na = false;
};

// A network's training step, for one layout, dtype and training pass: the sum over its layers of
// each layer shape's median times its layer count. A library's total is 0 unless it ran every
// layer.
struct NetworkTotal {
    std::string network, layout, dtype, pass;
    double iabn_ms = 0, floor_ms = 0, onednn_ms = 0, onednn_blocked_ms = 0, pytorch_ms = 0;
};
std::vector<NetworkTotal> network_totals(const std::vector<Row>& rows);  // empty without network rows

struct RunInfo {
    std::string date, cpu, kernel_target, command;
    int threads = 0, repeats = 0;
    // The memory system, measured before the shapes: GB/s of a read-only pass and of an in-place
    // read+write pass over the same 128 MB (one-pass nchw kernels read a block, then rewrite it
    // from cache: their read phase runs at the first rate, the floor at the second).
    double read_gbs = 0, read_write_gbs = 0;
    // How the 16-bit floors convert here (bench::floor_conversions()); empty without 16-bit rows.
    std::string floor_conversions;
    // Which PyTorch ran (pytorch.h), or why none did; empty when not asked for.
    std::string pytorch;
    // Printed under the table: oneDNN's implementations per dtype and format, and why n/a.
    std::vector<std::string> notes;
};

void print_header(const RunInfo& info);
void print_row(const Row& row);
// Per network: the totals, the ratios of each library to iabn, and the activation memory a step
// keeps (networks.h).
void print_network_totals(const std::vector<NetworkTotal>& totals);
void write_json(const std::string& path, const RunInfo& info, const std::vector<Row>& rows,
                const std::vector<NetworkTotal>& totals);
// Ratio to the floor per shape, iabn against oneDNN (f32 training passes), drawn by gnuplot
// into `png`. Returns false (after saying why) when gnuplot is missing or fails, or without f32
// rows.
bool write_chart(const std::string& png, const RunInfo& info, const std::vector<Row>& rows);
// The f32 network totals, each library's time per training pass against the floor's, by gnuplot.
bool write_network_chart(const std::string& png, const RunInfo& info, const std::vector<NetworkTotal>& totals);

}  // namespace bench
