// iabn_mpi_sync_training: one synchronized training step of an InPlace-ABN layer (batch norm +
// leaky_relu) on every process of an MPI job, with MPI_Allgather as the exchange (iabn.h, "Batch
// statistics across processes"):
//
//   mpirun -np 3 ./iabn_mpi_sync_training        (as root: add --allow-run-as-root)
//
// Each process holds its own share of the batch (rank r: 2r + 1 samples of [8, 6, 6], f32, nchw),
// drawn from distributions that differ from rank to rank, so that its local statistics are not
// the batch's. A training step is
//   forward_partials  -> MPI_Allgather -> forward_finish     (x becomes z)
//   backward_partials -> MPI_Allgather -> backward_finish    (dz becomes dx)
// and each process prints what it holds after it. Then a check that is not part of a training
// step: rank 0 gathers every process's x and dz, runs iabn's single-process forward() and
// backward() on the concatenated batch, and prints how far the synchronized results are from it.
// Exit status 1 if they are not within f32 rounding.
#include <iabn/iabn.h>

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

int rank = 0, size = 1;

// Concatenates every process's `local` on rank 0, in rank order (empty elsewhere).
template <typename T>
std::vector<T> gather_to_root(const std::vector<T>& local, MPI_Datatype type) {
    const int n = static_cast<int>(local.size());
    std::vector<int> counts(size), displs(size);
    MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < size; r++) {
        displs[r] = total;
        total += counts[r];
    }
    std::vector<T> all(rank == 0 ? total : 0);
    MPI_Gatherv(local.data(), n, type, all.data(), counts.data(), displs.data(), type, 0, MPI_COMM_WORLD);
    return all;
}

// Prints one line of every process on rank 0, in rank order.
void print_in_rank_order(const std::string& line) {
    const std::vector<char> all = gather_to_root(std::vector<char>(line.begin(), line.end()), MPI_CHAR);
    if (rank == 0) std::printf("%s", std::string(all.begin(), all.end()).c_str());
    std::fflush(stdout);
}

// max |a - b| / max |b|: the largest difference, relative to the largest value.
double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a.size(); i++) {
        diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    }
    return a.size() == b.size() ? diff / scale : INFINITY;
}

std::vector<float> as_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

constexpr int64_t C = 8, H = 6, W = 6;  // channels, height, width

// This process's share of the batch: 2 * rank + 1 samples, from a distribution of its own (a mean
// and spread per rank), and the loss's gradient.
struct Share {
    int64_t N = 0;
    std::vector<int64_t> shape;
    std::vector<float> x, dz;
};

Share make_share() {
    Share s;
    s.N = 2 * rank + 1;
    s.shape = {s.N, C, H, W};
    s.x.resize(s.N * C * H * W);
    s.dz.resize(s.x.size());
    std::mt19937 rng(1234 + rank);
    std::normal_distribution<float> normal(0, 1);
    for (size_t i = 0; i < s.x.size(); i++) {
        const int64_t c = (static_cast<int64_t>(i) / (H * W)) % C;
        s.x[i] = 0.5f * c + rank + (1.0f + 0.5f * rank) * normal(rng);  // a mean and spread per rank
        s.dz[i] = normal(rng);                                           // the loss's gradient
    }
    return s;
}

iabn::Options training_options() {
    iabn::Options options;
    options.activation = iabn::Activation::leaky_relu;
    options.activation_param = 0.01;
    options.momentum = 0.9;  // running = 0.9 * running + 0.1 * batch
    return options;
}

// The layer's weight and bias (the rest as constructed: running mean 0, running var 1).
void set_parameters(iabn::InPlaceABN& layer) {
    layer.set_weight(std::vector<double>{1.0, 0.5, -0.8, 1.2, 0.9, 1.1, -1.3, 0.7});
    layer.set_bias(std::vector<double>{0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.2, 0.4});
}

// The mean of channel 0 on this process alone, to compare with the synchronized one.
double local_mean0(const Share& s) {
    double mean = 0;
    for (int64_t n = 0; n < s.N; n++) {
        for (int64_t i = 0; i < H * W; i++) mean += s.x[n * C * H * W + i];
    }
    return mean / static_cast<double>(s.N * H * W);
}

// What each process contributes (2C + 1 f64 values) and what the all-gather returns (P rows, in
// rank order).
struct Exchange {
    int64_t L = iabn::sync_partials_size(C);
    std::vector<double> mine = std::vector<double>(L), all = std::vector<double>(size * L);
    iabn::TensorRef partials{mine.data(), iabn::DType::f64, {L}};
    iabn::TensorRef gathered{all.data(), iabn::DType::f64, {size, L}};

    void allgather() {
        MPI_Allgather(mine.data(), static_cast<int>(L), MPI_DOUBLE, all.data(), static_cast<int>(L), MPI_DOUBLE,
                      MPI_COMM_WORLD);
    }
};

// One synchronized training step: x becomes z, dz becomes dx.
void training_step(const iabn::TensorRef& xt, const iabn::TensorRef& dzt, iabn::InPlaceABN& layer,
                   const iabn::Options& options, Exchange& ex) {
    iabn::forward_partials(xt, ex.partials, options);
    ex.allgather();
    iabn::forward_finish(xt, layer.state(), ex.gathered, options);  // x is now z

    iabn::backward_partials(xt, dzt, layer.state(), layer.grads(), ex.partials, options);
    ex.allgather();
    iabn::backward_finish(xt, dzt, layer.state(), ex.gathered, options);  // dz is now dx
}

// What each process holds, a line each on rank 0.
void print_holdings(const iabn::InPlaceABN& layer, const Share& s, double local_mean, int64_t L) {
    const double bytes = 8.0 * L;
    if (rank == 0) {
        std::printf("iabn %s, %d processes; per pass each sends %.0f bytes (8 * (2C + 1), C = %lld) and receives "
                    "%.0f\n",
                    iabn::kernel_target().c_str(), size, bytes, static_cast<long long>(C), bytes * size);
        std::printf("rank  samples  local mean[0]  synchronized mean[0]  invstd[0]  running_mean[0]  running_var[0]  "
                    "weight_grad[0] (local)  bias_grad[0] (local)\n");
    }
    char line[256];
    std::snprintf(line, sizeof line, "%4d  %7lld  %13.6f  %20.6f  %9.6f  %15.6f  %14.6f  %22.6f  %20.6f\n", rank,
                  static_cast<long long>(s.N), local_mean, layer.saved_mean()[0], layer.saved_invstd()[0],
                  layer.running_mean()[0], layer.running_var()[0], layer.weight_grad()[0], layer.bias_grad()[0]);
    print_in_rank_order(line);
}

// The number of processes whose statistics are not rank 0's, bit for bit (every process must hold
// the same).
int ranks_with_other_statistics(const iabn::InPlaceABN& layer) {
    std::vector<double> stats = layer.saved_mean(), more = layer.saved_invstd();
    stats.insert(stats.end(), more.begin(), more.end());
    more = layer.running_var();
    stats.insert(stats.end(), more.begin(), more.end());
    std::vector<double> root = stats;
    MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
    int differ = std::memcmp(root.data(), stats.data(), stats.size() * sizeof(double)) != 0;
    MPI_Allreduce(MPI_IN_PLACE, &differ, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return differ;
}

// Rank 0: the step of the concatenated batch in one process (`x_all`, `dz_all`: every process's x
// and dz before the step, which it overwrites) against the synchronized results (`z_all`,
// `dx_all`: every process's; `wg`, `bg`: the sums of the processes' parameter gradients). Prints
// the differences; returns how many are too large, plus `differ`.
int check_one_process(const iabn::InPlaceABN& layer, const iabn::Options& options, std::vector<float>& x_all,
                      std::vector<float>& dz_all, const std::vector<float>& z_all, const std::vector<float>& dx_all,
                      const std::vector<double>& wg, const std::vector<double>& bg, int differ) {
    int failed = 0;
    const int64_t total = static_cast<int64_t>(x_all.size()) / (C * H * W);
    const iabn::TensorRef whole{x_all.data(), iabn::DType::f32, {total, C, H, W}};
    const iabn::TensorRef dwhole{dz_all.data(), iabn::DType::f32, {total, C, H, W}};
    iabn::InPlaceABN one(C, options, iabn::DType::f32);
    one.set_weight(layer.weight());
    one.set_bias(layer.bias());
    one.forward(whole);            // x_all becomes z
    one.backward(whole, dwhole);   // dz_all becomes dx
    const struct {
        const char* what;
        double diff;
    } rows[] = {
        {"saved_mean", max_rel_diff(as_float(layer.saved_mean()), as_float(one.saved_mean()))},
        {"saved_invstd", max_rel_diff(as_float(layer.saved_invstd()), as_float(one.saved_invstd()))},
        {"running_mean", max_rel_diff(as_float(layer.running_mean()), as_float(one.running_mean()))},
        {"running_var", max_rel_diff(as_float(layer.running_var()), as_float(one.running_var()))},
        {"z (every rank's)", max_rel_diff(z_all, x_all)},
        {"dx (every rank's)", max_rel_diff(dx_all, dz_all)},
        {"weight_grad (sum of the ranks')", max_rel_diff(as_float(wg), as_float(one.weight_grad()))},
        {"bias_grad (sum of the ranks')", max_rel_diff(as_float(bg), as_float(one.bias_grad()))},
    };
    std::printf("\nAgainst forward()/backward() of the concatenated batch (%lld samples) in one process "
                "(max |difference| / max |value|; f32 rounding is ~1e-7):\n",
                static_cast<long long>(total));
    for (const auto& r : rows) {
        const bool ok = r.diff <= 1e-5;
        failed += ok ? 0 : 1;
        std::printf("  %-32s %.2e  %s\n", r.what, r.diff, ok ? "ok" : "TOO LARGE");
    }
    std::printf("  statistics on every rank the same bits as rank 0's: %s\n", differ ? "NO" : "yes");
    failed += differ;
    std::printf("%s\n", failed ? "FAILED: the synchronized step is not that of the concatenated batch"
                               : "The statistics, z, dx and the summed gradients are those of the concatenated "
                                 "batch.");
    return failed;
}

// The check (not part of a training step): rank 0 gathers every process's x and dz before the
// step (`x0`, `dz0`) and after it (`s`), and the sums of the parameter gradients (each process's
// own: their sum is the whole batch's), and compares with the concatenated batch in one process.
// Returns on every process whether it failed.
int check(const iabn::InPlaceABN& layer, const iabn::Options& options, const std::vector<float>& x0,
          const std::vector<float>& dz0, const Share& s) {
    const int differ = ranks_with_other_statistics(layer);
    std::vector<double> wg = layer.weight_grad(), bg = layer.bias_grad();
    MPI_Reduce(rank == 0 ? MPI_IN_PLACE : wg.data(), wg.data(), static_cast<int>(C), MPI_DOUBLE, MPI_SUM, 0,
               MPI_COMM_WORLD);
    MPI_Reduce(rank == 0 ? MPI_IN_PLACE : bg.data(), bg.data(), static_cast<int>(C), MPI_DOUBLE, MPI_SUM, 0,
               MPI_COMM_WORLD);
    std::vector<float> x_all = gather_to_root(x0, MPI_FLOAT), dz_all = gather_to_root(dz0, MPI_FLOAT);
    const std::vector<float> z_all = gather_to_root(s.x, MPI_FLOAT), dx_all = gather_to_root(s.dz, MPI_FLOAT);
    int failed = 0;
    if (rank == 0) failed = check_one_process(layer, options, x_all, dz_all, z_all, dx_all, wg, bg, differ);
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return failed;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    Share share = make_share();
    const std::vector<float> x0 = share.x, dz0 = share.dz;  // for the check at the end
    const iabn::Options options = training_options();
    // Owns weight, bias, running mean, running var, the saved statistics and the parameter
    // gradients; the synchronized calls take its buffers.
    iabn::InPlaceABN layer(C, options, iabn::DType::f32);
    set_parameters(layer);
    const iabn::TensorRef xt{share.x.data(), iabn::DType::f32, share.shape};
    const iabn::TensorRef dzt{share.dz.data(), iabn::DType::f32, share.shape};
    Exchange exchange;
    const double local_mean = local_mean0(share);

    training_step(xt, dzt, layer, options, exchange);
    print_holdings(layer, share, local_mean, exchange.L);
    const int failed = check(layer, options, x0, dz0, share);
    MPI_Finalize();
    return failed ? 1 : 0;
}
