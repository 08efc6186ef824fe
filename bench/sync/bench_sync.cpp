// iabn-bench-sync: what synchronizing the batch statistics across processes costs. Each process of
// an MPI job holds a tensor of its own; a training step (forward + backward, batch statistics,
// with the parameter gradients) is timed two ways, side by side in the same run on the same data:
//   local         iabn::forward + iabn::backward: this process's statistics (no exchange);
//   synchronized  forward_partials, MPI_Allgather, forward_finish, backward_partials,
//                 MPI_Allgather, backward_finish: the statistics of every process's batch.
// Each repeat runs both (in alternating order), each after an MPI_Barrier; a step's time is the
// slowest process's (the next collective waits for it), the table gives medians and minima over
// the repeats, the synchronized step's time in MPI_Allgather (which includes waiting for the
// slowest process to arrive), the two MPI_Allgather alone from a barrier (the transport's cost),
// and the bytes each process sent and received in its MPI_Allgather calls per step.
//
//   mpirun -np 3 iabn-bench-sync [--shape 8,256,56,56] [--layout nchw|nhwc] [--dtype f32|f64|f16|bf16]
//                                [--repeats 21] [--threads N]
// --threads: iabn's threads per process (default: the cores divided among this node's processes).
// bench/sync/run.sh starts it with the flags Open MPI needs in a container (README.md there).
#include "timing.h"  // bench/timing.h: now(), median()

#include <iabn/iabn.h>

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

int rank = 0, size = 1;

struct Config {
    std::vector<int64_t> shape = {8, 256, 56, 56};
    iabn::Layout layout = iabn::Layout::nchw;
    iabn::DType dtype = iabn::DType::f32;
    int repeats = 21;
    int threads = 0;  // 0: the cores divided among this node's processes
};

[[noreturn]] void usage(const char* error) {
    if (rank == 0) {
        if (error) std::fprintf(stderr, "iabn-bench-sync: %s\n", error);
        std::fprintf(stderr, "usage: mpirun -np P iabn-bench-sync [--shape 8,256,56,56] [--layout nchw|nhwc]\n"
                             "       [--dtype f32|f64|f16|bf16] [--repeats 21] [--threads N]\n");
    }
    MPI_Finalize();
    std::exit(error ? 2 : 0);
}

Config parse(int argc, char** argv) {
    Config c;
    using Setter = std::function<void(const std::string&)>;
    const std::map<std::string, Setter> options = {
        {"--shape",
         [&](const std::string& v) {
             c.shape.clear();
             for (size_t at = 0; at <= v.size();) {
                 const size_t comma = std::min(v.find(',', at), v.size());
                 c.shape.push_back(std::stoll(v.substr(at, comma - at)));
                 at = comma + 1;
             }
             if (c.shape.size() < 2 || c.shape.size() > 5) usage("--shape takes 2 to 5 extents");
         }},
        {"--layout",
         [&](const std::string& v) {
             if (v != "nchw" && v != "nhwc") usage("--layout takes nchw or nhwc");
             c.layout = v == "nchw" ? iabn::Layout::nchw : iabn::Layout::nhwc;
         }},
        {"--dtype",
         [&](const std::string& v) {
             const iabn::DType all[] = {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16};
             const auto* it = std::find_if(std::begin(all), std::end(all),
                                           [&](iabn::DType t) { return v == iabn::to_string(t); });
             if (it == std::end(all)) usage("--dtype takes f32, f64, f16 or bf16");
             c.dtype = *it;
         }},
        {"--repeats", [&](const std::string& v) { c.repeats = std::max(1, std::stoi(v)); }},
        {"--threads", [&](const std::string& v) { c.threads = std::max(1, std::stoi(v)); }},
    };
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") usage(nullptr);
        const auto option = options.find(a);
        if (option == options.end()) usage(("unknown option " + a).c_str());
        if (i + 1 >= argc) usage(("missing value after " + a).c_str());
        option->second(argv[++i]);
    }
    return c;
}

// Values in the dtype's storage: f32/f64 directly; f16/bf16 through f32 (bf16: the upper half,
// f16: the _Float16 of the compiler; the benchmark's data need no particular rounding).
void fill(std::vector<unsigned char>& bytes, iabn::DType dtype, const std::vector<float>& v) {
    bytes.resize(v.size() * iabn::dtype_size(dtype));
    for (size_t i = 0; i < v.size(); i++) {
        switch (dtype) {
            case iabn::DType::f32: std::memcpy(&bytes[4 * i], &v[i], 4); break;
            case iabn::DType::f64: {
                const double d = v[i];
                std::memcpy(&bytes[8 * i], &d, 8);
                break;
            }
            case iabn::DType::bf16: {
                uint32_t b;
                std::memcpy(&b, &v[i], 4);
                const uint16_t h = static_cast<uint16_t>(b >> 16);
                std::memcpy(&bytes[2 * i], &h, 2);
                break;
            }
            case iabn::DType::f16: {
                const _Float16 h = static_cast<_Float16>(v[i]);
                std::memcpy(&bytes[2 * i], &h, 2);
                break;
            }
        }
    }
}

// The calls of a training step, each timed on this process.
enum Phase {
    forward, backward,                                                                     // local
    fwd_partials, fwd_allgather, fwd_finish, bwd_partials, bwd_allgather, bwd_finish,  // synchronized
    phases
};
const char* const phase_names[phases] = {"forward",
                                         "backward",
                                         "forward_partials",
                                         "MPI_Allgather (forward; waits for the others included)",
                                         "forward_finish",
                                         "backward_partials",
                                         "MPI_Allgather (backward; waits for the others included)",
                                         "backward_finish"};

struct Clock {
    std::vector<double> seconds = std::vector<double>(phases, 0.0);
    double last = 0;
    void start() { last = bench::now(); }
    void lap(Phase p) {
        const double t = bench::now();
        seconds[p] += t - last;
        last = t;
    }
};

// The exchange, with the bytes this process hands MPI and gets from it.
struct Exchange {
    double sent = 0, received = 0;
    void allgather(std::vector<double>& mine, std::vector<double>& all) {
        const int L = static_cast<int>(mine.size());
        MPI_Allgather(mine.data(), L, MPI_DOUBLE, all.data(), L, MPI_DOUBLE, MPI_COMM_WORLD);
        sent += 8.0 * L;
        received += 8.0 * L * size;
    }
};

// Element-wise, the largest over the processes.
std::vector<double> slowest(std::vector<double> seconds) {
    MPI_Allreduce(MPI_IN_PLACE, seconds.data(), static_cast<int>(seconds.size()), MPI_DOUBLE, MPI_MAX,
                  MPI_COMM_WORLD);
    return seconds;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    Config cfg = parse(argc, argv);
    MPI_Comm node;
    int node_procs = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_procs);
    MPI_Comm_free(&node);
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (cfg.threads == 0) cfg.threads = std::max(1, cores / node_procs);
    iabn::set_num_threads(cfg.threads);

    const std::vector<int64_t>& shape = cfg.shape;
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const int64_t C = cfg.layout == iabn::Layout::nchw ? shape[1] : shape.back();
    const int64_t inner = cfg.layout == iabn::Layout::nchw ? numel / shape[0] / C : 1;

    // x: a mean and spread per channel, different on each process; dz: noise.
    std::vector<float> xv(numel), dzv(numel);
    {
        std::mt19937 rng(77 + rank);
        std::normal_distribution<float> normal(0, 1);
        for (int64_t i = 0; i < numel; i++) {
            const int64_t c = (i / inner) % C;
            xv[i] = 0.01f * c + 0.5f * rank + normal(rng);
            dzv[i] = normal(rng);
        }
    }
    std::vector<unsigned char> x0, dz0, x, dz;
    fill(x0, cfg.dtype, xv);
    fill(dz0, cfg.dtype, dzv);
    x = x0;
    dz = dz0;
    xv.clear();
    xv.shrink_to_fit();
    dzv.clear();
    dzv.shrink_to_fit();

    iabn::Options o;
    o.activation = iabn::Activation::leaky_relu;
    o.activation_param = 0.01;
    o.layout = cfg.layout;
    iabn::InPlaceABN layer(C, o, cfg.dtype);
    const iabn::TensorRef xt{x.data(), cfg.dtype, shape}, dzt{dz.data(), cfg.dtype, shape};
    const int64_t L = iabn::sync_partials_size(C);
    std::vector<double> mine(L), all(L * size);
    const iabn::TensorRef partials{mine.data(), iabn::DType::f64, {L}};
    const iabn::TensorRef gathered{all.data(), iabn::DType::f64, {size, L}};

    auto restore = [&] {
        std::memcpy(x.data(), x0.data(), x.size());
        std::memcpy(dz.data(), dz0.data(), dz.size());
    };
    Clock clock;
    Exchange ex;
    auto local_step = [&] {
        iabn::forward(xt, layer.state(), o);
        clock.lap(forward);
        iabn::backward(xt, dzt, layer.state(), layer.grads(), o);
        clock.lap(backward);
    };
    auto sync_step = [&] {
        iabn::forward_partials(xt, partials, o);
        clock.lap(fwd_partials);
        ex.allgather(mine, all);
        clock.lap(fwd_allgather);
        iabn::forward_finish(xt, layer.state(), gathered, o);
        clock.lap(fwd_finish);
        iabn::backward_partials(xt, dzt, layer.state(), layer.grads(), partials, o);
        clock.lap(bwd_partials);
        ex.allgather(mine, all);
        clock.lap(bwd_allgather);
        iabn::backward_finish(xt, dzt, layer.state(), gathered, o);
        clock.lap(bwd_finish);
    };
    // One step of this process from a barrier, on restored x and dz (warm in the cache, as after
    // the layer before); returns the slowest process's time.
    auto timed = [&](const auto& step) {
        restore();
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = bench::now();
        clock.start();
        step();
        return slowest({bench::now() - t0})[0];
    };

    timed(local_step);  // warm-up: page faults, Halide's thread pool, MPI's shared-memory segments
    timed(sync_step);
    std::vector<double> t_local, t_sync, t_alone;
    std::vector<std::vector<double>> t_phase(phases);
    for (int r = 0; r < cfg.repeats; r++) {
        clock = Clock();
        ex = Exchange();
        if (r % 2 == 0) {
            t_local.push_back(timed(local_step));
            t_sync.push_back(timed(sync_step));
        } else {
            t_sync.push_back(timed(sync_step));
            t_local.push_back(timed(local_step));
        }
        const std::vector<double> phase = slowest(clock.seconds);
        for (int p = 0; p < phases; p++) t_phase[p].push_back(phase[p]);
        // The two exchanges alone, back to back from a barrier: the transport's own cost, without
        // the wait for a slower process that the step's MPI_Allgather time includes.
        Exchange alone;
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = bench::now();
        alone.allgather(mine, all);
        alone.allgather(mine, all);
        t_alone.push_back(slowest({bench::now() - t0})[0]);
    }

    if (rank == 0) {
        const double tensor_mb = static_cast<double>(x.size()) / 1e6;
        std::string shape_text;
        for (int64_t d : shape) shape_text += (shape_text.empty() ? "" : ",") + std::to_string(d);
        std::printf("iabn-bench-sync: %d processes (%d on this node) x %d iabn thread(s), %s, %d cores; kernels %s\n",
                    size, node_procs, cfg.threads, bench::cpu_model().c_str(), cores, iabn::kernel_target().c_str());
        std::printf("per process: [%s] %s %s (%.1f MB), leaky_relu(0.01), training step = forward + backward "
                    "(with parameter gradients)\n",
                    shape_text.c_str(), iabn::to_string(cfg.dtype), iabn::to_string(cfg.layout), tensor_mb);
        std::printf("%d repeats side by side (alternating order), each step after a barrier, the slowest process's "
                    "time\n\n",
                    cfg.repeats);
        // One row: the median and the minimum over the repeats, in ms.
        auto row = [](const std::string& what, const std::vector<double>& t, int digits) {
            std::printf("| %s | %.*f | %.*f |\n", what.c_str(), digits, 1e3 * bench::median(t), digits,
                        1e3 * *std::min_element(t.begin(), t.end()));
        };
        std::printf("| step (the calls: each the slowest process's) | median ms | min ms |\n|---|---:|---:|\n");
        row("**local**: forward + backward", t_local, 2);
        for (int p = forward; p <= backward; p++) row(std::string("- ") + phase_names[p], t_phase[p], 2);
        row("**synchronized**: partials + MPI_Allgather + finish, both passes", t_sync, 2);
        for (int p = fwd_partials; p < phases; p++) row(std::string("- ") + phase_names[p], t_phase[p], 2);
        row("the 2 MPI_Allgather alone, from a barrier (no computation)", t_alone, 3);
        const double ml = bench::median(t_local), ms = bench::median(t_sync);
        std::printf("| synchronized / local | %.2fx | |\n\n", ms / ml);
        std::printf("| per process and step (C = %lld, P = %d) | bytes |\n|---|---:|\n", static_cast<long long>(C),
                    size);
        std::printf("| sent: 2 x 8 x (2C + 1) | %.0f |\n", ex.sent);
        std::printf("| received: 2 x 8 x P x (2C + 1) | %.0f |\n", ex.received);
        std::printf("| the tensor, for scale | %.0f |\n", static_cast<double>(x.size()));
    }
    MPI_Finalize();
    return 0;
}
