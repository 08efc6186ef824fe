// iabn-bench-gpu: iabn's training forward and backward on a CUDA GPU (f32, f16, bf16; nchw and
// nhwc) against two floors from the device's own copy bandwidth, measured in the same run, and
// against PyTorch's batch_norm + leaky_relu_ timed the same way by bench/gpu/torch_bench.py (a
// separate process: its lines come in through --torch). bench/gpu/run.sh runs it all;
// bench/README.md says what is measured and how.
//
//   iabn-bench-gpu [--quick] [--calls 20] [--repeats 7] [--dtypes f32,f16,bf16] [--torch FILE]
//                  [--budget-s SECONDS]
//   iabn-bench-gpu --list-shapes [--quick]   the shapes it runs, one "NxCxHxW" a line, in its order
//                                            (torch_bench.py takes them from here: one list)
//   iabn-bench-gpu --device                  the GPU it would run on; or why there is none, exit 1
//
// Per call, for iabn, the copy and (in torch_bench.py) PyTorch alike:
//   events: `calls` back-to-back calls on one stream between two CUDA events, time / calls, the
//           median of `repeats` such runs: what a program that launches them one by one gets,
//           the host's launch work included wherever it is slower than the device;
//   graph:  the same `calls` captured once into a CUDA graph and replayed `repeats` times between
//           two events, time / calls, median: the device's time without the host's gaps.
// Floors, from a device-to-device copy of the tensor (read + write: 2 passes), the lower of its
// events and graph times:
//   copy floor:     the two-pass kernels iabn runs on a GPU (docs/DESIGN.md, "Performance
//                   model"): forward 3 passes = 1.5 copies, backward 5 passes = 2.5 copies;
//   resident floor: a variant that re-reads a channel's slab from L2 between its reduction and
//                   its apply, so DRAM sees it once: forward 2 passes = 1 copy, backward 3 = 1.5.
// Back-to-back calls run on the same tensors, so a tensor that fits in L2 stays there from call
// to call: for iabn, PyTorch and the copy alike.
#include "cuda_driver.h"
#include "half.h"      // iabn_test::to_bits: the 16-bit values
#include "networks.h"  // bench::networks(): the layers whose totals the bench sums
#include "timing.h"    // bench::median, bench::now
#include "value_pool.h"  // bench::ValuePool: the tensors' values

#include <iabn/iabn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using bench::ValuePool;
using iabn_test::CudaDevice;
using Dims = std::vector<int64_t>;  // logical [N, C, H, W]

// ResNet-50's activation shapes at batch 32, timed in every run (--quick: only these); the full
// run adds every layer shape of bench::networks() and sums each network's training step.
const std::vector<Dims> kShapes = {
    {32, 64, 112, 112}, {32, 256, 56, 56}, {32, 512, 28, 28}, {32, 1024, 14, 14}, {32, 2048, 7, 7},
};

// The scale and shift of every channel. A bias of 5 keeps z = xhat + 5 >= 0 but in the rare
// element with xhat < -5 (3e-7 of them), so that a forward's output has a standard deviation of 1
// and the next forward's saved_invstd is 1 (see run_case: why the backward depends on it).
constexpr float kWeight = 1.0f, kBias = 5.0f;

struct Settings {
    int calls = 20, repeats = 7;
    bool quick = false, list_shapes = false, device_only = false;
    std::vector<iabn::DType> dtypes = {iabn::DType::f32, iabn::DType::f16, iabn::DType::bf16};
    std::string torch_file;
    double budget_s = 0;  // stop starting cases after this many seconds (0: no limit)
};

std::string dims_text(const Dims& d) {
    std::string out;
    for (size_t i = 0; i < d.size(); i++) out += (i ? "x" : "") + std::to_string(d[i]);
    return out;
}

int64_t elements(const Dims& d) {
    int64_t n = 1;
    for (int64_t v : d) n *= v;
    return n;
}

// kShapes, then (the full run) every other layer shape of the networks, each once, in order.
std::vector<Dims> bench_shapes(bool quick) {
    std::vector<Dims> out = kShapes;
    if (quick) return out;
    for (const bench::Network& net : bench::networks()) {
        for (const bench::Layers& l : net.layers) {
            if (std::find(out.begin(), out.end(), l.nchw) == out.end()) out.push_back(l.nchw);
        }
    }
    return out;
}

iabn::DType parse_dtype(const std::string& name) {
    for (iabn::DType d : {iabn::DType::f32, iabn::DType::f16, iabn::DType::bf16}) {
        if (name == iabn::to_string(d)) return d;
    }
    throw std::runtime_error("--dtypes takes f32, f16 and bf16, not '" + name + "'");
}

Settings parse(int argc, char** argv) {
    Settings s;
    bool calls_given = false, repeats_given = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--calls") s.calls = std::max(1, std::stoi(value())), calls_given = true;
        else if (a == "--repeats") s.repeats = std::max(3, std::stoi(value())), repeats_given = true;
        else if (a == "--quick") s.quick = true;
        else if (a == "--torch") s.torch_file = value();
        else if (a == "--budget-s") s.budget_s = std::stod(value());
        else if (a == "--list-shapes") s.list_shapes = true;
        else if (a == "--device") s.device_only = true;
        else if (a == "--dtypes") {
            s.dtypes.clear();
            std::stringstream list(value());
            for (std::string d; std::getline(list, d, ',');) s.dtypes.push_back(parse_dtype(d));
        } else {
            throw std::invalid_argument(a == "--help" ? a : "unknown argument " + a);
        }
    }
    // --quick: 10 calls, 3 repeats, unless given.
    if (s.quick && !calls_given) s.calls = 10;
    if (s.quick && !repeats_given) s.repeats = 3;
    return s;
}

// ---- Results ----

// One row of a table: a shape's (or a network's total) pass in one dtype and layout, in ms per
// call; 0 where there is no time (not measured, or PyTorch missing).
struct Row {
    std::string label, layout, dtype, pass;
    double iabn_events = 0, iabn_graph = 0, copy_floor = 0, resident_floor = 0, torch_events = 0, torch_graph = 0;
};
// The times a network total adds up (each layer's, times its layer count).
constexpr double Row::*kTimes[] = {&Row::iabn_events,    &Row::iabn_graph,   &Row::copy_floor,
                                   &Row::resident_floor, &Row::torch_events, &Row::torch_graph};

// The lower of two times, of those there are.
double lower(double a, double b) { return a > 0 && b > 0 ? std::min(a, b) : std::max(a, b); }

std::string number(double v, const char* format) {
    if (!(v > 0)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string quotient(double num, double den) { return num > 0 && den > 0 ? number(num / den, "%.2f") : "-"; }

void print_columns(const char* first) {
    std::printf("%-14s %-4s %-4s %-9s %9s %9s %9s %6s %9s %6s %9s %9s %6s %6s\n", first, "lay", "type", "pass",
                "iabn ev", "iabn gr", "copy fl", "ratio", "res fl", "ratio", "torch ev", "torch gr", "x ev", "x gr");
}

void print_row(const Row& r) {
    const double iabn = lower(r.iabn_events, r.iabn_graph);
    std::printf("%-14s %-4s %-4s %-9s %9s %9s %9s %6s %9s %6s %9s %9s %6s %6s\n", r.label.c_str(), r.layout.c_str(),
                r.dtype.c_str(), r.pass.c_str(), number(r.iabn_events, "%.4f").c_str(),
                number(r.iabn_graph, "%.4f").c_str(), number(r.copy_floor, "%.4f").c_str(),
                quotient(iabn, r.copy_floor).c_str(), number(r.resident_floor, "%.4f").c_str(),
                quotient(iabn, r.resident_floor).c_str(), number(r.torch_events, "%.4f").c_str(),
                number(r.torch_graph, "%.4f").c_str(), quotient(r.torch_events, r.iabn_events).c_str(),
                quotient(r.torch_graph, r.iabn_graph).c_str());
    std::fflush(stdout);
}

// Lines printed under the tables, each once.
struct Notes {
    std::vector<std::string> lines;
    void add(const std::string& line) {
        if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
    }
};

// torch_bench.py's lines: "<NxCxHxW> <nchw|nhwc> <dtype> <pass> <events|graph> <ms>", keyed by all
// but the time; its "# ..." lines (what it ran, what failed) become notes.
std::map<std::string, double> read_torch(const std::string& path, Notes& notes) {
    std::map<std::string, double> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# ", 0) == 0) {
            notes.add("PyTorch: " + line.substr(2));
            continue;
        }
        std::istringstream ss(line);
        std::string dims, layout, dtype, pass, method;
        double ms = 0;
        if (ss >> dims >> layout >> dtype >> pass >> method >> ms) {
            out[dims + " " + layout + " " + dtype + " " + pass + " " + method] = ms;
        }
    }
    return out;
}

// ---- Timing ----

// Releases device objects in a destructor, which must not throw: after an error of the device
// (the one that is on its way to main) the release may fail too, and only that first error says
// what went wrong.
void quietly(const std::function<void()>& release) {
    try {
        release();
    } catch (const std::exception&) {
    }
}

// A stream, two events, and the two ways of timing `calls` calls on the stream.
class Timer {
public:
    Timer(CudaDevice& gpu, int calls, int repeats)
        : gpu_(gpu), calls_(calls), repeats_(repeats), stream_(gpu.create_queue()), start_(gpu.create_event()),
          end_(gpu.create_event()) {}
    ~Timer() {
        quietly([&] {
            gpu_.destroy_event(start_);
            gpu_.destroy_event(end_);
            gpu_.destroy_queue(stream_);
        });
    }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    void* stream() const { return stream_; }
    void synchronize() { gpu_.synchronize(stream_); }

    // ms per call: `calls` back-to-back enqueues between two events; the median of `repeats`.
    double events(const std::function<void()>& call) {
        return median_per_call([&] {
            for (int i = 0; i < calls_; i++) call();
        });
    }

    // ms per call: the same calls captured into a graph once, replayed between two events; the
    // median of `repeats` replays, after one untimed replay (the first uploads the graph).
    double graph(const std::function<void()>& call) {
        Graph g(gpu_);
        capture(g, call);
        g.exec = gpu_.instantiate(g.graph);
        gpu_.launch_graph(g.exec, stream_);
        return median_per_call([&] { gpu_.launch_graph(g.exec, stream_); });
    }

private:
    // A captured graph and its executable form, destroyed together.
    struct Graph {
        explicit Graph(CudaDevice& gpu) : gpu(gpu) {}
        ~Graph() {
            quietly([&] {
                if (exec) gpu.destroy_graph_exec(exec);
                if (graph) gpu.destroy_graph(graph);
            });
        }
        Graph(const Graph&) = delete;
        Graph& operator=(const Graph&) = delete;
        CudaDevice& gpu;
        void* graph = nullptr;
        void* exec = nullptr;
    };

    double median_per_call(const std::function<void()>& enqueue) {
        std::vector<double> ms;
        for (int r = 0; r < repeats_; r++) {
            gpu_.record(start_, stream_);
            enqueue();
            gpu_.record(end_, stream_);
            ms.push_back(gpu_.elapsed_ms(start_, end_) / calls_);
        }
        return bench::median(ms);
    }

    // `calls` calls captured into g.graph. A call that fails while capturing (a host read or wait
    // is refused there) ends the capture before its error goes on, so the stream works again.
    void capture(Graph& g, const std::function<void()>& call) {
        gpu_.begin_capture(stream_);
        try {
            for (int i = 0; i < calls_; i++) call();
        } catch (...) {
            try {
                g.graph = gpu_.end_capture(stream_);
            } catch (const iabn::Error&) {  // an invalidated capture ends with an error: expected
            }
            throw;
        }
        g.graph = gpu_.end_capture(stream_);
    }

    CudaDevice& gpu_;
    const int calls_, repeats_;
    void* stream_;
    void* start_;
    void* end_;
};

// Both timings of `call`; a graph that cannot be captured gets no time (its column says -) and a
// note per call and error (not per case: the same failure in every case would flood the notes);
// the events time stands: it does not depend on the capture.
std::pair<double, double> both_timings(Timer& timer, const std::function<void()>& call, const std::string& what,
                                       Notes& notes) {
    const double events = timer.events(call);
    double graph = 0;
    try {
        graph = timer.graph(call);
    } catch (const std::exception& e) {
        notes.add("no graph time for " + what + ": " + e.what());
    }
    return {events, graph};
}

// ---- Data ----

// How many of the n elements at `memory` are inf or NaN (read after the stream's work).
int64_t non_finite(CudaDevice& gpu, void* memory, iabn::DType dtype, int64_t n) {
    std::vector<unsigned char> host(static_cast<size_t>(n) * iabn::dtype_size(dtype));
    gpu.download(host.data(), memory, host.size());
    int64_t bad = 0;
    if (dtype == iabn::DType::f32) {
        const float* v = reinterpret_cast<const float*>(host.data());
        for (int64_t i = 0; i < n; i++) bad += !std::isfinite(v[i]);
    } else {
        const uint16_t mask = (dtype == iabn::DType::f16 ? iabn_test::kF16 : iabn_test::kBF16).exponent_mask();
        const uint16_t* v = reinterpret_cast<const uint16_t*>(host.data());
        for (int64_t i = 0; i < n; i++) bad += (v[i] & mask) == mask;
    }
    return bad;
}

// One shape in one dtype on the device: x, dz, the copy's destination and the [C] buffers. The
// nchw and nhwc cases of the pair run on the same buffers, nhwc on the values nchw left.
class DeviceCase {
public:
    DeviceCase(CudaDevice& gpu, const Dims& nchw, iabn::DType dtype, const ValuePool& x_values,
               const ValuePool& dz_values)
        : gpu_(gpu), dtype_(dtype), n_(elements(nchw)), bytes_(static_cast<size_t>(n_) * iabn::dtype_size(dtype)) {
        x_ = upload(x_values.values(dtype, n_));
        dz_ = upload(dz_values.values(dtype, n_));
        copy_ = gpu.alloc(bytes_);
        const int64_t c = nchw[1];
        state_ = {channel(c, kWeight), channel(c, kBias), channel(c, 0), channel(c, 1), channel(c, 0), channel(c, 0)};
        grads_ = {channel(c, 0), channel(c, 0)};
    }
    ~DeviceCase() {
        quietly([&] {
            for (void* p : owned_) gpu_.free(p);
            gpu_.free(copy_);
        });
    }
    DeviceCase(const DeviceCase&) = delete;
    DeviceCase& operator=(const DeviceCase&) = delete;

    iabn::TensorRef x(const Dims& shape) const { return {x_, dtype_, shape, iabn::Device::cuda}; }
    iabn::TensorRef dz(const Dims& shape) const { return {dz_, dtype_, shape, iabn::Device::cuda}; }
    const iabn::ChannelState& state() const { return state_; }
    const iabn::ParamGrads& grads() const { return grads_; }
    // The floor's call: x copied into a buffer of its own.
    void copy(void* stream) { gpu_.copy_async(copy_, x_, bytes_, stream); }
    // Elements of x and of dz that are inf or NaN now.
    int64_t non_finite_x() { return non_finite(gpu_, x_, dtype_, n_); }
    int64_t non_finite_dz() { return non_finite(gpu_, dz_, dtype_, n_); }

private:
    void* upload(const std::vector<unsigned char>& host) {
        void* p = gpu_.alloc(host.size());
        owned_.push_back(p);
        gpu_.upload(p, host.data(), host.size());
        return p;
    }
    // Per-channel buffers stay f32 for 16-bit tensors (iabn.h, ChannelState).
    iabn::TensorRef channel(int64_t c, float value) {
        const std::vector<float> host(static_cast<size_t>(c), value);
        void* p = upload(std::vector<unsigned char>(reinterpret_cast<const unsigned char*>(host.data()),
                                                    reinterpret_cast<const unsigned char*>(host.data() + c)));
        return {p, iabn::DType::f32, {c}, iabn::Device::cuda};
    }

    CudaDevice& gpu_;
    iabn::DType dtype_;
    int64_t n_;
    size_t bytes_;
    void *x_ = nullptr, *dz_ = nullptr, *copy_ = nullptr;
    std::vector<void*> owned_;
    iabn::ChannelState state_;
    iabn::ParamGrads grads_;
};

iabn::Options bench_options(iabn::Layout layout, void* stream) {
    iabn::Options o;
    o.activation = iabn::Activation::leaky_relu;
    o.activation_param = 0.01;
    o.layout = layout;
    o.cuda_stream = stream;
    // The backward's check of the effective scale reads [C] values on the host, which waits for
    // the stream in every call and is refused while capturing. PyTorch's batch_norm has no such
    // wait, and a training loop that knows its weights are valid turns it off (iabn.torch does
    // while capturing): off in both timings, so they time the same calls.
    o.check_device_values = false;
    return o;
}

// After a case's timed calls: their values must still be finite (a time taken on infs and NaNs
// would be suspect, and the repeated calls are designed to keep them finite).
void check_finite(Timer& timer, DeviceCase& dev, const std::string& what, Notes& notes) {
    timer.synchronize();
    const int64_t x = dev.non_finite_x(), dz = dev.non_finite_dz();
    if (x == 0 && dz == 0) return;
    notes.add("NON-FINITE values after the timed calls of " + what + ": " + std::to_string(x) + " in x (z), " +
              std::to_string(dz) + " in dz (dx): its times are suspect");
}

// Times one shape, dtype and layout: the copy, iabn's forward, iabn's backward; a row per pass
// (PyTorch's columns are filled in by the caller).
std::vector<Row> run_case(Timer& timer, DeviceCase& dev, const Dims& nchw, iabn::DType dtype, iabn::Layout layout,
                          Notes& notes) {
    const Dims shape = layout == iabn::Layout::nchw ? nchw : Dims{nchw[0], nchw[2], nchw[3], nchw[1]};
    const iabn::Options o = bench_options(layout, timer.stream());
    const iabn::TensorRef x = dev.x(shape), dz = dev.dz(shape);

    const auto copy = both_timings(timer, [&] { dev.copy(timer.stream()); }, "the copy", notes);
    const double copy_ms = lower(copy.first, copy.second);

    // Back-to-back calls must be valid as they are (nothing is restored between them):
    // - forward: x becomes z in place, and the next call normalizes z again: same statistics,
    //   same work, finite values.
    // - backward: dz becomes dx = g * invstd * P(dz * f(z)), where P removes each channel's mean
    //   and its component along xhat (an orthogonal projection: xhat has mean 0 and mean square 1)
    //   and f(z) is 1 or 0.01. So |dx| <= g * invstd * |dz|, and with g * invstd = 1 the repeated
    //   backward keeps dz bounded (P P = P: from the second call on dz hardly changes) instead of
    //   growing to inf in f16. g = 1, and invstd = 1 once the forward's input is a previous
    //   forward's output, xhat + 5 (kBias): hence two forwards before anything is timed (also in
    //   the nhwc case, whose channels are other elements of the values the nchw case left).
    //   Checked with this library's CPU kernels, same sequence: over 400 back-to-back backwards
    //   dz's rms stayed within 0.5% of its start in f32, f16 and bf16, both layouts. The two
    //   forwards are also the warm-up (module load, iabn's per-stream workspace: later calls, and the
    //   graph's, allocate nothing).
    auto forward = [&] { iabn::forward(x, dev.state(), o); };
    auto backward = [&] { iabn::backward(x, dz, dev.state(), dev.grads(), o); };
    forward();
    forward();
    const auto fwd = both_timings(timer, forward, "iabn's forward", notes);
    backward();
    const auto bwd = both_timings(timer, backward, "iabn's backward", notes);

    check_finite(timer, dev, dims_text(nchw) + " " + iabn::to_string(layout) + " " + iabn::to_string(dtype), notes);
    Row f{dims_text(nchw), iabn::to_string(layout), iabn::to_string(dtype), "fwd-train", fwd.first, fwd.second,
          1.5 * copy_ms, 1.0 * copy_ms};
    Row b{dims_text(nchw), iabn::to_string(layout), iabn::to_string(dtype), "bwd-train", bwd.first, bwd.second,
          2.5 * copy_ms, 1.5 * copy_ms};
    return {f, b};
}

// PyTorch's times for the rows, where torch_bench.py has them.
void add_torch(std::vector<Row>& rows, const std::map<std::string, double>& torch) {
    for (Row& r : rows) {
        const std::string key = r.label + " " + r.layout + " " + r.dtype + " " + r.pass + " ";
        auto get = [&](const char* method) {
            const auto it = torch.find(key + method);
            return it == torch.end() ? 0.0 : it->second;
        };
        r.torch_events = get("events");
        r.torch_graph = get("graph");
    }
}

// A network's totals in one dtype and layout: every layer's row times its layer count, per pass,
// and the step (forward + backward). A time missing on any layer leaves that column's total out.
std::vector<Row> network_totals(const bench::Network& net, const std::string& dtype, const std::string& layout,
                                const std::vector<Row>& rows) {
    std::vector<Row> out;
    for (const char* pass : {"fwd-train", "bwd-train"}) {
        Row t{net.name, layout, dtype, pass};
        for (const bench::Layers& l : net.layers) {
            const auto r = std::find_if(rows.begin(), rows.end(), [&](const Row& r) {
                return r.label == dims_text(l.nchw) && r.layout == layout && r.dtype == dtype && r.pass == pass;
            });
            for (double Row::*time : kTimes) t.*time += r != rows.end() && (*r).*time > 0 ? l.count * (*r).*time : NAN;
        }
        out.push_back(t);
    }
    Row step{net.name, layout, dtype, "step"};
    for (double Row::*time : kTimes) step.*time = out[0].*time + out[1].*time;
    out.push_back(step);
    for (Row& t : out) {
        for (double Row::*time : kTimes) {
            if (std::isnan(t.*time)) t.*time = 0;
        }
    }
    return out;
}

void print_network_totals(const Settings& set, const std::vector<Row>& rows) {
    for (const bench::Network& net : bench::networks()) {
        std::printf("\n%s: every batch-norm layer of a training step (bench/networks.cpp), each distinct shape timed "
                    "once and counted per layer; ms per step\n",
                    net.description.c_str());
        print_columns("network");
        for (iabn::DType dtype : set.dtypes) {
            for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
                for (const Row& t : network_totals(net, iabn::to_string(dtype), iabn::to_string(layout), rows))
                    print_row(t);
            }
        }
    }
}

void print_header(CudaDevice& gpu, const Settings& set, bool have_torch) {
    std::printf("iabn-bench-gpu  %s  leaky_relu(0.01), weight %g, bias %g, check_device_values off; ms per call:\n",
                gpu.name().c_str(), kWeight, kBias);
    std::printf("  ev = %d back-to-back calls between two CUDA events, gr = the same %d calls replayed from a CUDA "
                "graph; medians of %d\n",
                set.calls, set.calls, set.repeats);
    std::printf("  floors from a device-to-device copy in the same run: copy fl = 1.5 copies forward, 2.5 backward "
                "(iabn's two-pass kernels),\n  res fl = 1 and 1.5 (a resident variant's); ratio = iabn's lower time "
                "/ floor; x = PyTorch / iabn, same method\n");
    std::printf("  PyTorch: F.batch_norm + F.leaky_relu_, autograd's backward; nhwc = torch.channels_last; "
                "f16/bf16 under torch.autocast%s\n\n",
                have_torch ? "" : " (no PyTorch times given: its columns say -)");
    print_columns("shape");
}

// Every case in order (dtype, then shape, then layout; torch_bench.py's order too), a row per
// pass printed as it is measured; then the network totals.
int run(const Settings& set) {
    const double start = bench::now();  // of the time budget
    CudaDevice* gpu = CudaDevice::get();
    Notes notes;
    const std::map<std::string, double> torch =
        set.torch_file.empty() ? std::map<std::string, double>() : read_torch(set.torch_file, notes);
    print_header(*gpu, set, !torch.empty());
    const std::vector<Dims> shapes = bench_shapes(set.quick);
    const ValuePool x_values(0.3f, 1.5f, 7), dz_values(0.0f, 1.0f, 8);
    Timer timer(*gpu, set.calls, set.repeats);
    std::vector<Row> rows;
    size_t done = 0;
    for (iabn::DType dtype : set.dtypes) {
        for (const Dims& nchw : shapes) {
            if (set.budget_s > 0 && bench::now() - start > set.budget_s) break;
            DeviceCase dev(*gpu, nchw, dtype, x_values, dz_values);
            for (iabn::Layout layout : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
                std::vector<Row> r = run_case(timer, dev, nchw, dtype, layout, notes);
                add_torch(r, torch);
                for (const Row& row : r) print_row(row);
                rows.insert(rows.end(), r.begin(), r.end());
            }
            done++;
        }
    }
    if (done < set.dtypes.size() * shapes.size()) {
        char line[160];
        std::snprintf(line, sizeof line, "time budget of %.0f s spent: %zu of %zu (dtype, shape) pairs not run",
                      set.budget_s, set.dtypes.size() * shapes.size() - done, set.dtypes.size() * shapes.size());
        notes.add(line);
    }
    // The workspace iabn kept for the stream goes before the stream does (iabn.h).
    iabn::Options o;
    o.cuda_stream = timer.stream();
    iabn::release_workspace(iabn::Device::cuda, o);
    if (!set.quick) print_network_totals(set, rows);
    if (!notes.lines.empty()) std::printf("\n");
    for (const std::string& line : notes.lines) std::printf("%s\n", line.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) try {
    Settings set;
    try {
        set = parse(argc, argv);
    } catch (const std::exception& e) {
        const std::string what = e.what();
        if (what != "--help") std::fprintf(stderr, "iabn-bench-gpu: %s\n", what.c_str());
        std::fprintf(stderr,
                     "usage: iabn-bench-gpu [--quick] [--calls 20] [--repeats 7] [--dtypes f32,f16,bf16] "
                     "[--torch FILE] [--budget-s S]\n"
                     "       iabn-bench-gpu --list-shapes [--quick] | --device\n");
        return what == "--help" ? 0 : 2;
    }
    if (set.list_shapes) {  // no GPU needed
        for (const Dims& d : bench_shapes(set.quick)) std::printf("%s\n", dims_text(d).c_str());
        return 0;
    }
    CudaDevice* gpu = CudaDevice::get();
    if (!gpu) {
        std::fprintf(stderr, "iabn-bench-gpu: %s\n", CudaDevice::why().c_str());
        return 1;
    }
    if (set.device_only) {
        std::printf("%s\n", gpu->name().c_str());
        return 0;
    }
    return run(set);
} catch (const std::exception& e) {
    std::fprintf(stderr, "iabn-bench-gpu: %s\n", e.what());
    return 1;
}
