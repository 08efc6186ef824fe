// test_sync_mpi: the synchronized passes (iabn.h, "Batch statistics across processes") across
// real processes, with MPI_Allgather as the exchange. Run by ctest as
//   mpirun --oversubscribe -np 3 test_sync_mpi                      (tests/mpi/CMakeLists.txt)
// Each rank holds its share of the batch: 1, 4 and 7 samples (rank r: the (r mod 3)-th of them).
// Rank 0 draws a seed (std::random_device; IABN_TEST_SEED=<n> fixes it) and broadcasts it; every
// rank generates the same concatenated batch from it and takes its slice. Per case (dtype x
// layout x activation, plus rank-2 tensors where rank 0 holds [1, C]), every rank runs
//   forward_partials -> MPI_Allgather -> forward_finish,
//   backward_partials -> MPI_Allgather -> backward_finish
// on its slice (the backward on the z and saved_invstd its forward wrote, as a training step does)
// and compares with the float64 reference (tests/support/reference.h) over the concatenated batch, with
// the suite's tolerances (tests/support/compare.h, error_measures.h): z, saved_mean, saved_invstd,
// running_mean, running_var, dx; its own parameter gradients against the reference's sums over
// its own elements (with the global statistics), and their sum over the ranks against the
// full-batch gradients. Every rank must also hold the same statistics bit for bit. f64 cases
// compare every output with iabn's single-process forward()/backward() over the concatenated
// batch too (to 1e-12). Outputs are NaN-poisoned before each call.
//
//   test_sync_mpi --bad-input-rank R
// The failure test (tests/mpi/expect_abort.cmake): rank R passes partials of the wrong shape, so
// its forward_partials throws iabn::InvalidArgument while the other ranks wait in MPI_Allgather;
// it prints the error and calls MPI_Abort, which must end the whole job with an error.
//
// Exit status: 0 when every rank passed every case, 1 otherwise.
#include "compare.h"
#include "reference.h"
#include "test_util.h"  // Buffer, Rng, numel, channel_dtype (GoogleTest's header; no test framework runs)

#include <iabn/iabn.h>

#include <mpi.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using iabn_test::Buffer;
using iabn_test::Bytes;
using iabn_test::Mismatch;

struct World {
    int rank = 0, size = 1;
    std::vector<int64_t> batches;  // every rank's samples, in rank order
    uint64_t seed = 0;
    int64_t batch() const { return batches[static_cast<size_t>(rank)]; }
    int64_t first_sample() const {
        int64_t first = 0;
        for (int r = 0; r < rank; r++) first += batches[static_cast<size_t>(r)];
        return first;
    }
    int64_t total() const {
        int64_t n = 0;
        for (int64_t b : batches) n += b;
        return n;
    }
};
World world;

// The buffer as a host tensor (test_util.h's Buffer::ref() belongs to the device mirror of the
// GoogleTest suite, which this test does not link).
iabn::TensorRef host(Buffer& b) { return b.ref_on(iabn::Device::cpu, b.data()); }

// An iabn call of this rank. An iabn::Error here would leave the other ranks waiting in their
// next MPI_Allgather: the rank prints it and aborts the job (MPI_Abort ends every rank).
void call(const char* what, const std::function<void()>& f) {
    try {
        f();
    } catch (const iabn::Error& e) {
        const char* type = dynamic_cast<const iabn::InvalidArgument*>(&e) ? "iabn::InvalidArgument" : "iabn::Error";
        std::fprintf(stderr, "rank %d: %s threw %s: %s\nrank %d: calling MPI_Abort (seed %" PRIu64 ")\n",
                     world.rank, what, type, e.what(), world.rank, world.seed);
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
}

void allgather(Buffer& partials, Buffer& gathered) {
    const int L = static_cast<int>(partials.size());
    MPI_Allgather(partials.data(), L, MPI_DOUBLE, gathered.data(), L, MPI_DOUBLE, MPI_COMM_WORLD);
}

struct Case {
    iabn::DType dtype = iabn::DType::f32;
    iabn::Layout layout = iabn::Layout::nchw;
    std::vector<int64_t> sample;  // the shape without dim 0
    iabn::Activation act = iabn::Activation::identity;
    double param = 1.0;
    bool unbiased = false, abs_weight = false;

    std::vector<int64_t> shape(int64_t n) const {
        std::vector<int64_t> s{n};
        s.insert(s.end(), sample.begin(), sample.end());
        return s;
    }
    iabn::Options options() const {
        iabn::Options o;
        o.activation = act;
        o.activation_param = param;
        o.layout = layout;
        o.momentum = 0.8;  // neither 0 nor 1: both terms of the running update count
        o.unbiased_running_var = unbiased;
        o.abs_weight = abs_weight;
        return o;
    }
    std::string name() const {
        std::string n = std::string(iabn::to_string(dtype)) + "_" + iabn::to_string(layout) + "_[n";
        for (int64_t d : sample) n += "," + std::to_string(d);
        n += "]_" + std::string(iabn::to_string(act));
        if (act != iabn::Activation::identity) n += std::to_string(param).substr(0, 4);
        n += unbiased ? "_unbiased" : "_biased";
        if (abs_weight) n += "_absweight";
        return n;
    }
};

std::vector<double> slice(const std::vector<double>& v, int64_t first, int64_t count) {
    return {v.begin() + first, v.begin() + first + count};
}
template <typename T>
std::vector<T> slice_of(const std::vector<T>& v, int64_t first, int64_t count) {
    return {v.begin() + first, v.begin() + first + count};
}

// Values as stored in `dtype` (what the library reads).
std::vector<double> stored(iabn::DType dtype, const std::vector<double>& v) {
    Buffer b(dtype, {static_cast<int64_t>(v.size())});
    return b.set(v);
}

// The concatenated batch and the per-channel inputs, as stored; the same on every rank.
// x ~ N(mean_c, std_c); dz = m_c + beta_c * (x - mean_c) / std_c + N(0, 1) (sums of dy and
// dy * xhat that are a sizeable part of their magnitudes); weights of both signs.
struct Data {
    std::vector<double> x, dz, weight, bias, running_mean, running_var;
};

Data make_data(const Case& c, int64_t case_index) {
    const std::vector<int64_t> shape = c.shape(world.total());
    const int64_t C = ref::num_channels(shape, c.layout), n = iabn_test::numel(shape);
    const iabn::DType cd = iabn_test::channel_dtype(c.dtype);
    iabn_test::Rng rng(world.seed ^ iabn_test::fnv1a(c.name()) ^ static_cast<uint64_t>(case_index));
    std::vector<double> mean(C), spread(C), m(C), beta(C);
    Data d;
    for (int64_t k = 0; k < C; k++) {
        mean[k] = rng.uniform(-2, 2);
        spread[k] = rng.uniform(0.5, 2);
        m[k] = rng.signed_uniform(0.5, 1.5);
        beta[k] = rng.signed_uniform(0.5, 1.5);
        d.weight.push_back(rng.signed_uniform(0.5, 1.5));
        d.bias.push_back(rng.uniform(-1, 1));
        d.running_mean.push_back(rng.uniform(-1, 1));
        d.running_var.push_back(rng.uniform(0.5, 2));
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t k = ref::channel_of(i, shape, c.layout);
        const double e = rng.normal();
        d.x.push_back(mean[k] + spread[k] * e);
        d.dz.push_back(m[k] + beta[k] * e + rng.normal());
    }
    d.x = stored(c.dtype, d.x);
    d.dz = stored(c.dtype, d.dz);
    for (std::vector<double>* v : {&d.weight, &d.bias, &d.running_mean, &d.running_var}) *v = stored(cd, *v);
    return d;
}

// One rank's per-channel buffers: weight, bias and running statistics from the data, the saved
// statistics and the parameter gradients NaN-poisoned.
struct Channels {
    Buffer weight, bias, running_mean, running_var, saved_mean, saved_invstd, weight_grad, bias_grad;
    Channels(iabn::DType cd, const Data& d) {
        const int64_t C = static_cast<int64_t>(d.weight.size());
        for (Buffer* b : all()) *b = Buffer(cd, {C});
        weight.set(d.weight);
        bias.set(d.bias);
        running_mean.set(d.running_mean);
        running_var.set(d.running_var);
        for (Buffer* b : {&saved_mean, &saved_invstd, &weight_grad, &bias_grad}) b->poison();
    }
    std::vector<Buffer*> all() {
        return {&weight, &bias, &running_mean, &running_var, &saved_mean, &saved_invstd, &weight_grad, &bias_grad};
    }
    iabn::ChannelState state() {
        return {host(weight), host(bias), host(running_mean), host(running_var), host(saved_mean), host(saved_invstd)};
    }
    iabn::ParamGrads grads() { return {host(weight_grad), host(bias_grad)}; }
};

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

// This rank's failures in the current case; each printed with the rank, the case and the seed.
struct Failures {
    std::string case_name;
    int count = 0;
    void add(const std::string& what) {
        count++;
        std::fprintf(stderr, "rank %d: FAIL %s: %s (seed %" PRIu64 ")\n", world.rank, case_name.c_str(), what.c_str(),
                     world.seed);
    }
    void add(const std::string& prefix, const std::vector<Mismatch>& ms) {
        for (const Mismatch& m : ms) {
            add(prefix + m.what + ": error " + num(m.error) + " > tolerance " + num(m.tolerance));
        }
    }
    void within(const std::string& what, double error, double tolerance) {
        if (!(error <= tolerance)) add(what + ": error " + num(error) + " > tolerance " + num(tolerance));
    }
};

// Whether this rank's buffer has rank 0's bytes.
bool same_as_rank0(const Buffer& b) {
    const Bytes mine = b.snapshot();
    Bytes root = mine;
    MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_BYTE, 0, MPI_COMM_WORLD);
    return root == mine;
}

// The whole tensor from every rank's slice (bytes in rank order), on every rank.
Buffer allgather_tensor(Buffer& local, const std::vector<int64_t>& whole_shape) {
    Buffer whole(local.dtype(), whole_shape);
    const int64_t bytes_per_sample = static_cast<int64_t>(local.bytes()) / local.shape()[0];
    std::vector<int> counts, displs;
    int64_t offset = 0;
    for (int64_t b : world.batches) {
        counts.push_back(static_cast<int>(b * bytes_per_sample));
        displs.push_back(static_cast<int>(offset));
        offset += b * bytes_per_sample;
    }
    MPI_Allgatherv(local.data(), static_cast<int>(local.bytes()), MPI_BYTE, whole.data(), counts.data(),
                   displs.data(), MPI_BYTE, MPI_COMM_WORLD);
    return whole;
}

std::vector<double> allreduce_sum(std::vector<double> v) {
    MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return v;
}

// One case on this rank; returns its failure count.
int run_case(const Case& c, int64_t case_index) {
    Failures fail{c.name()};
    const iabn::Options o = c.options();
    const iabn::DType cd = iabn_test::channel_dtype(c.dtype);
    const std::vector<int64_t> whole_shape = c.shape(world.total()), shape = c.shape(world.batch());
    const int64_t row = iabn_test::numel(c.sample), first = world.first_sample() * row, n = world.batch() * row;
    const int64_t C = ref::num_channels(whole_shape, c.layout), L = iabn::sync_partials_size(C);
    const Data d = make_data(c, case_index);

    // ---- Forward ----
    Buffer x(c.dtype, shape);  // x, then z
    x.set(slice(d.x, first, n));
    Channels ch(cd, d);
    Buffer partials(iabn::DType::f64, {L}), gathered(iabn::DType::f64, {world.size, L});
    partials.poison();
    gathered.poison();
    call("iabn::forward_partials", [&] { iabn::forward_partials(host(x), host(partials), o); });
    allgather(partials, gathered);
    call("iabn::forward_finish", [&] { iabn::forward_finish(host(x), ch.state(), host(gathered), o); });

    const ref::ForwardResult r =
        ref::forward(d.x, whole_shape, d.weight, d.bias, d.running_mean, d.running_var, o);
    iabn_test::ForwardOutputs got;
    got.z = x.get();
    got.saved_mean = ch.saved_mean.get();
    got.saved_invstd = ch.saved_invstd.get();
    got.running_mean = ch.running_mean.get();
    got.running_var = ch.running_var.get();
    ref::ForwardResult mine = r;  // this rank's z; the statistics of the whole batch
    mine.z = slice(r.z, first, n);
    const iabn_test::ForwardTolerances ftol{iabn_test::tolerance(c.dtype), iabn_test::channel_tolerance(c.dtype),
                                            iabn_test::channel_tolerance(c.dtype)};
    fail.add("forward against the reference: ", iabn_test::compare_forward(got, mine, true, ftol));
    const std::pair<const char*, Buffer*> statistics[] = {{"saved_mean", &ch.saved_mean},
                                                          {"saved_invstd", &ch.saved_invstd},
                                                          {"running_mean", &ch.running_mean},
                                                          {"running_var", &ch.running_var}};
    for (const auto& [name, b] : statistics) {
        if (!same_as_rank0(*b)) fail.add(std::string(name) + " differs from rank 0's (bit for bit)");
    }

    // ---- Backward, on the z and saved_invstd this rank's forward wrote ----
    Buffer z_whole = allgather_tensor(x, whole_shape);  // the reference's z: every rank's, as written
    Buffer dz(c.dtype, shape);
    dz.set(slice(d.dz, first, n));
    partials.poison();
    gathered.poison();
    call("iabn::backward_partials",
         [&] { iabn::backward_partials(host(x), host(dz), ch.state(), ch.grads(), host(partials), o); });
    allgather(partials, gathered);
    call("iabn::backward_finish", [&] { iabn::backward_finish(host(x), host(dz), ch.state(), host(gathered), o); });

    const std::vector<double> z_all = z_whole.get(), saved_invstd = ch.saved_invstd.get();
    const ref::BackwardResult rb = ref::backward(z_all, d.dz, whole_shape, d.weight, d.bias, saved_invstd, {}, o);
    // This rank's parameter gradients: the reference's sums over its own elements alone, with
    // the global statistics (that reference's dx is not the synchronized one: not used).
    const ref::BackwardResult local = ref::backward(slice(z_all, first, n), slice(d.dz, first, n), shape, d.weight,
                                                    d.bias, saved_invstd, {}, o);
    ref::BackwardResult want = local;
    want.dx = slice(rb.dx, first, n);
    want.dx_scale = slice(rb.dx_scale, first, n);
    want.saturated = slice_of(rb.saturated, first, n);
    iabn_test::BackwardOutputs bgot;
    bgot.dx = dz.get();
    bgot.grads = true;
    bgot.weight_grad = ch.weight_grad.get();
    bgot.bias_grad = ch.bias_grad.get();
    iabn_test::BackwardFloors floors;
    floors.skip = &want.saturated;  // ELU elements saturated in z: no reference dx
    const iabn_test::BackwardTolerances btol(iabn_test::tolerance(c.dtype), iabn_test::channel_tolerance(c.dtype));
    fail.add("backward against the reference (dx of the whole batch, local grads): ",
             iabn_test::compare_backward(bgot, want, btol, floors));
    // The local gradients add up, over the ranks, to the full batch's.
    const std::vector<double> wg_sum = allreduce_sum(bgot.weight_grad), bg_sum = allreduce_sum(bgot.bias_grad);
    fail.within("weight_grad summed over the ranks against the full batch's",
                iabn_test::rel_err_floor(wg_sum, rb.weight_grad, rb.weight_grad_scale, 0.1), btol.grads);
    fail.within("bias_grad summed over the ranks against the full batch's",
                iabn_test::rel_err_floor(bg_sum, rb.bias_grad, rb.bias_grad_scale, 0.1), btol.grads);

    // ---- f64: iabn's own single-process passes over the concatenated batch, to 1e-12 ----
    if (c.dtype == iabn::DType::f64) {
        Buffer whole(c.dtype, whole_shape), dz_whole(c.dtype, whole_shape);
        whole.set(d.x);
        dz_whole.set(d.dz);
        Channels cw(cd, d);
        call("iabn::forward (single process)", [&] { iabn::forward(host(whole), cw.state(), o); });
        const double tol = 1e-12;
        fail.within("z against forward() of the whole batch", iabn_test::rel_err(got.z, slice(whole.get(), first, n)),
                    tol);
        fail.within("saved_mean against forward()", iabn_test::rel_err(got.saved_mean, cw.saved_mean.get()), tol);
        fail.within("saved_invstd against forward()", iabn_test::rel_err(got.saved_invstd, cw.saved_invstd.get()), tol);
        fail.within("running_mean against forward()", iabn_test::rel_err(got.running_mean, cw.running_mean.get()), tol);
        fail.within("running_var against forward()", iabn_test::rel_err(got.running_var, cw.running_var.get()), tol);
        call("iabn::backward (single process)",
             [&] { iabn::backward(host(whole), host(dz_whole), cw.state(), cw.grads(), o); });
        fail.within("dx against backward() of the whole batch",
                    iabn_test::rel_err(bgot.dx, slice(dz_whole.get(), first, n)), tol);
        fail.within("weight_grad summed over the ranks against backward()'s",
                    iabn_test::rel_err(wg_sum, cw.weight_grad.get()), tol);
        fail.within("bias_grad summed over the ranks against backward()'s",
                    iabn_test::rel_err(bg_sum, cw.bias_grad.get()), tol);
        // The local gradients against backward() of this rank's slice alone with the global
        // saved_invstd (its gradients are sums over its own elements; its dx is not used).
        // backward() may refuse a slice of 1 element per channel: then this check is left out.
        Buffer z_mine(c.dtype, shape), dz_mine(c.dtype, shape);
        z_mine.set(got.z);
        dz_mine.set(slice(d.dz, first, n));
        Channels cm(cd, d);
        cm.saved_invstd.set(saved_invstd);
        try {
            iabn::backward(host(z_mine), host(dz_mine), cm.state(), cm.grads(), o);
            fail.within("weight_grad against backward() of this rank's slice",
                        iabn_test::rel_err(bgot.weight_grad, cm.weight_grad.get()), tol);
            fail.within("bias_grad against backward() of this rank's slice",
                        iabn_test::rel_err(bgot.bias_grad, cm.bias_grad.get()), tol);
        } catch (const iabn::InvalidArgument&) {
            if (world.batch() * row / C > 1) fail.add("backward() refused this rank's slice");
        }
    }
    return fail.count;
}

// Whether this build has kernels for the dtype: iabn refuses a dtype it has none for with an
// InvalidArgument naming it (the same on every rank: the same library).
bool has_kernels(iabn::DType dtype) {
    Buffer x(dtype, {2, 3}), partials(iabn::DType::f64, {iabn::sync_partials_size(3)});
    x.set({0, 1, 2, 3, 4, 5});
    try {
        iabn::forward_partials(host(x), host(partials), iabn::Options());
        return true;
    } catch (const iabn::InvalidArgument& e) {
        if (std::string(e.what()).find("this build has") != std::string::npos) return false;
        throw;
    }
}

// Every dtype x layout x activation on rank-4 tensors, then per dtype a rank-2 case ([n, C]: rank 0
// holds [1, C], a single element per channel); the running variance unbiased in every other case,
// abs_weight in every fourth.
std::vector<Case> cases() {
    const iabn::DType dtypes[] = {iabn::DType::f64, iabn::DType::f32, iabn::DType::f16, iabn::DType::bf16};
    const int acts = iabn::kActivationCount;
    std::vector<Case> out;
    for (int i = 0; i < 4 * 2 * acts; i++) {
        Case c;
        c.dtype = dtypes[i / (2 * acts)];
        c.layout = (i / acts) % 2 ? iabn::Layout::nhwc : iabn::Layout::nchw;
        c.sample = c.layout == iabn::Layout::nchw ? std::vector<int64_t>{3, 5, 4} : std::vector<int64_t>{5, 4, 3};
        c.act = iabn::kActivations[i % acts];
        c.param = iabn_test::typical_param(c.act);
        c.unbiased = i % 2 == 0;
        c.abs_weight = i % 4 == 1;
        out.push_back(c);
        if (i % (2 * acts) == 2 * acts - 1) {
            Case single;
            single.dtype = c.dtype;
            single.sample = {6};
            single.act = iabn::Activation::leaky_relu;
            single.param = 0.1;
            single.unbiased = true;
            out.push_back(single);
        }
    }
    // Ranks 3 and 5; and two larger tensors (tens of thousands of elements a channel in all), where
    // the kernels split their reductions across threads and vectors.
    const struct {
        iabn::DType dtype;
        iabn::Layout layout;
        std::vector<int64_t> sample;
        iabn::Activation act;
        double param;
    } more[] = {{iabn::DType::f32, iabn::Layout::nchw, {4, 9}, iabn::Activation::elu, 0.5},
                {iabn::DType::f32, iabn::Layout::nhwc, {2, 3, 2, 5}, iabn::Activation::leaky_relu, 0.3},
                {iabn::DType::f32, iabn::Layout::nchw, {16, 33, 35}, iabn::Activation::elu, 1.0},
                {iabn::DType::f64, iabn::Layout::nhwc, {19, 40, 17}, iabn::Activation::leaky_relu, 0.01}};
    for (const auto& m : more) {
        Case c;
        c.dtype = m.dtype;
        c.layout = m.layout;
        c.sample = m.sample;
        c.act = m.act;
        c.param = m.param;
        c.unbiased = out.size() % 2 == 0;
        out.push_back(c);
    }
    return out;
}

// The failure test: rank `bad` passes partials one value short, so its forward_partials throws
// iabn::InvalidArgument while the others wait in MPI_Allgather; call() prints it and aborts.
int run_bad_input(int bad) {
    Buffer x(iabn::DType::f32, {world.batch(), 3, 4}), partials(iabn::DType::f64, {iabn::sync_partials_size(3)});
    Buffer gathered(iabn::DType::f64, {world.size, partials.size()});
    for (int64_t i = 0; i < x.size(); i++) x.put(i, static_cast<double>(i % 7));
    iabn::TensorRef p = host(partials);
    if (world.rank == bad) p.shape = {partials.size() - 1};
    call("iabn::forward_partials", [&] { iabn::forward_partials(host(x), p, iabn::Options()); });
    allgather(partials, gathered);
    std::fprintf(stderr, "rank %d: FAIL: the bad input of rank %d was accepted\n", world.rank, bad);
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    if (world.size < 2) {  // rank 0 alone would hold 1 sample: too few for batch statistics
        std::fprintf(stderr, "test_sync_mpi: run it on 2 or more processes (mpirun -np 3)\n");
        MPI_Finalize();
        return 2;
    }
    const int64_t shares[] = {1, 4, 7};
    for (int r = 0; r < world.size; r++) world.batches.push_back(shares[r % 3]);
    if (world.rank == 0) {
        const char* env = std::getenv("IABN_TEST_SEED");
        if (env && *env) {
            world.seed = std::strtoull(env, nullptr, 0);
        } else {
            std::random_device rd;
            world.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
        }
    }
    MPI_Bcast(&world.seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);

    int failures = 0;
    if (argc == 3 && std::string(argv[1]) == "--bad-input-rank") {
        failures = run_bad_input(std::atoi(argv[2]));
    } else {
        if (argc != 1) {
            if (world.rank == 0) std::fprintf(stderr, "usage: test_sync_mpi [--bad-input-rank R]\n");
            MPI_Finalize();
            return 2;
        }
        if (world.rank == 0) {
            std::string b;
            for (int64_t n : world.batches) b += (b.empty() ? "" : ", ") + std::to_string(n);
            std::printf("test_sync_mpi: %d processes, local batches %s samples, seed %" PRIu64
                        " (IABN_TEST_SEED=%" PRIu64 " repeats this run), kernels: %s\n",
                        world.size, b.c_str(), world.seed, world.seed, iabn::kernel_target().c_str());
        }
        int ran = 0, skipped = 0, failed_cases = 0;
        const std::vector<Case> all = cases();
        for (size_t i = 0; i < all.size(); i++) {
            const Case& c = all[i];
            if (!has_kernels(c.dtype)) {
                if (world.rank == 0) std::printf("skip %s: this build has no %s kernels\n", c.name().c_str(),
                                                 iabn::to_string(c.dtype));
                skipped++;
                continue;
            }
            int f = run_case(c, static_cast<int64_t>(i));
            MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
            ran++;
            failures += f;
            failed_cases += f ? 1 : 0;
            if (world.rank == 0) {
                std::printf("%s %s\n", f ? "FAILED" : "ok    ", c.name().c_str());
                std::fflush(stdout);
            }
        }
        if (world.rank == 0) {
            std::printf("test_sync_mpi: %d cases ran on %d processes, %d failed (%d failures over the ranks), "
                        "%d skipped; seed %" PRIu64 "\n",
                        ran, world.size, failed_cases, failures, skipped, world.seed);
        }
    }
    MPI_Finalize();
    return failures ? 1 : 0;
}
