// Concurrency: several threads call iabn::forward / iabn::backward at the same time on different
// tensors, and use different iabn::InPlaceABN objects; every result is bit-identical to the same
// calls made one after another. It runs in every suite; in iabn_tests_tsan (ThreadSanitizer) it is
// the check of the API's "calls are thread-safe".
//
// iabn::set_num_threads is process-wide: it is called here only while no other thread runs (and,
// as in the determinism tests, left set: every test that depends on it sets it).
#include "case_runner.h"

#include <iabn/iabn.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace iabn_test {
namespace {

constexpr int kCallers = 4;        // threads calling iabn at the same time
constexpr int kKernelThreads = 4;  // Halide's pool; nchw with C >= 4 takes the one-pass kernels
constexpr int kRounds = 3;         // each round runs every job once, on another thread than before

// Releases every waiting thread at once, so that the calls overlap as much as possible.
class StartGate {
public:
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }
    void open() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// Runs body(t) on kCallers threads started together; returns the message of every exception.
std::vector<std::string> on_threads(const std::function<void(int)>& body) {
    StartGate gate;
    std::vector<std::string> errors(kCallers);
    std::vector<std::thread> threads;
    for (int t = 0; t < kCallers; t++) {
        threads.emplace_back([&, t] {
            gate.wait();
            try {
                body(t);
            } catch (const std::exception& e) {
                errors[static_cast<size_t>(t)] = "thread " + std::to_string(t) + ": " + e.what();
            }
        });
    }
    gate.open();
    for (std::thread& th : threads) th.join();
    std::vector<std::string> out;
    for (const std::string& e : errors) {
        if (!e.empty()) out.push_back(e);
    }
    return out;
}

Buffer from_bytes(iabn::DType dtype, const std::vector<int64_t>& shape, const Bytes& bytes) {
    Buffer b(dtype, shape);
    if (bytes.size() != b.bytes()) throw std::logic_error("from_bytes: size mismatch");
    std::memcpy(b.raw(), bytes.data(), bytes.size());
    return b;
}

Bytes to_bytes(iabn::DType dtype, const std::vector<int64_t>& shape, const std::vector<double>& values) {
    Buffer b(dtype, shape);
    b.set(values);
    return b.snapshot();
}

// ---------------------------------------------------------------------------------------------
// The functional API: a forward and a backward per job, on fresh copies of the job's inputs.

struct Job {
    Case c;
    Bytes x, dz, weight, bias, running_mean, running_var;
};

struct JobOutputs {
    Bytes z, saved_mean, saved_invstd, running_mean, running_var, dx, weight_grad, bias_grad;
};

Job make_job(const Case& c, Rng& rng) {
    const Inputs in = make_inputs(c, rng);
    const iabn::DType cd = channel_dtype(c.dtype);
    Job j;
    j.c = c;
    j.x = to_bytes(c.dtype, c.shape, in.x);
    j.dz = to_bytes(c.dtype, c.shape, make_dz(c, in, rng));
    j.weight = to_bytes(cd, {in.channels}, in.weight);
    j.bias = to_bytes(cd, {in.channels}, in.bias);
    j.running_mean = to_bytes(cd, {in.channels}, in.running_mean);
    j.running_var = to_bytes(cd, {in.channels}, in.running_var);
    return j;
}

JobOutputs run_job(const Job& j) {
    const Case& c = j.c;
    const iabn::Options o = c.options();
    const iabn::DType cd = channel_dtype(c.dtype);
    const std::vector<int64_t> cs = {ref::num_channels(c.shape, c.layout)};
    Buffer x = from_bytes(c.dtype, c.shape, j.x), dz = from_bytes(c.dtype, c.shape, j.dz);
    Buffer w = from_bytes(cd, cs, j.weight), b = from_bytes(cd, cs, j.bias);
    Buffer rm = from_bytes(cd, cs, j.running_mean), rv = from_bytes(cd, cs, j.running_var);
    Buffer sm(cd, cs), si(cd, cs), wg(cd, cs), bg(cd, cs);
    const iabn::ChannelState state{w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()};
    iabn::forward(x.ref(), state, o);
    iabn::backward(x.ref(), dz.ref(), state, {wg.ref(), bg.ref()}, o);
    return {x.snapshot(),  sm.snapshot(), si.snapshot(), rm.snapshot(),
            rv.snapshot(), dz.snapshot(), wg.snapshot(), bg.snapshot()};
}

// Each output that differs from the serial run's, by name ("" when none does).
std::string differences(const JobOutputs& got, const JobOutputs& want) {
    std::string out;
    auto check = [&](const char* name, const Bytes& a, const Bytes& b) {
        if (a != b) out += std::string(out.empty() ? "" : ", ") + name;
    };
    check("z", got.z, want.z);
    check("saved_mean", got.saved_mean, want.saved_mean);
    check("saved_invstd", got.saved_invstd, want.saved_invstd);
    check("running_mean", got.running_mean, want.running_mean);
    check("running_var", got.running_var, want.running_var);
    check("dx", got.dx, want.dx);
    check("weight_grad", got.weight_grad, want.weight_grad);
    check("bias_grad", got.bias_grad, want.bias_grad);
    return out;
}

Case job_case(iabn::DType dtype, iabn::Layout layout, std::vector<int64_t> shape, Stats stats,
              iabn::Activation act, double param) {
    Case c;
    c.dtype = dtype;
    c.layout = layout;
    c.shape = std::move(shape);
    c.stats = stats;
    c.act = act;
    c.param = param;
    return c;
}

// Both dtypes, both layouts, ranks 2..5; nchw with C >= kKernelThreads (one-pass kernels) and
// with C < kKernelThreads (two-pass), nhwc (two-pass); batch and global statistics; all three
// activations. 1.2e4 to 2e5 elements each: large enough that the calls overlap, and that Halide
// splits each across its pool.
std::vector<Case> job_cases() {
    using iabn::Activation;
    using iabn::DType;
    using iabn::Layout;
    return {
        job_case(DType::f32, Layout::nchw, {4, 16, 33, 17}, Stats::batch, Activation::leaky_relu, 0.1),
        job_case(DType::f64, Layout::nchw, {2, 8, 1001}, Stats::batch, Activation::elu, 1.0),
        job_case(DType::f32, Layout::nchw, {16, 2, 999}, Stats::batch, Activation::identity, 1.0),
        job_case(DType::f64, Layout::nchw, {8, 3, 41, 37}, Stats::batch, Activation::leaky_relu, 0.01),
        job_case(DType::f32, Layout::nhwc, {8, 37, 41, 16}, Stats::batch, Activation::elu, 0.5),
        job_case(DType::f64, Layout::nhwc, {1001, 24}, Stats::batch, Activation::identity, 1.0),
        job_case(DType::f32, Layout::nchw, {4, 16, 33, 17}, Stats::global_train, Activation::elu, 1.0),
        job_case(DType::f64, Layout::nhwc, {16, 129, 8}, Stats::global_eval, Activation::leaky_relu, 0.2),
        job_case(DType::f32, Layout::nhwc, {4, 5, 7, 9, 12}, Stats::batch, Activation::leaky_relu, 0.3),
        job_case(DType::f64, Layout::nchw, {3, 32, 5, 5, 5}, Stats::batch, Activation::elu, 0.5),
        job_case(DType::f32, Layout::nchw, {4096, 6}, Stats::batch, Activation::identity, 1.0),
        job_case(DType::f64, Layout::nchw, {16, 2, 1000}, Stats::global_eval, Activation::identity, 1.0),
    };
}

TEST(Concurrency, ForwardBackwardOnFourThreadsMatchSerialCalls) {
    IABN_TRACE_SEED();
    ASSERT_NO_THROW(iabn::set_num_threads(kKernelThreads));
    Rng rng;
    std::vector<Job> jobs;
    for (const Case& c : job_cases()) jobs.push_back(make_job(c, rng));
    const size_t n = jobs.size();

    std::vector<JobOutputs> serial;
    for (const Job& j : jobs) ASSERT_NO_THROW(serial.push_back(run_job(j)));

    // Round r: job k runs on thread (k + r * (1 + k / kCallers)) % kCallers. From one round to the
    // next every job moves by 1 + k / kCallers threads (1 to kCallers - 1, as asserted: to another
    // thread), and each thread gets another mix of jobs. Each slot has one writer.
    static_assert(kRounds >= 2, "the jobs must change threads");
    ASSERT_LT((n - 1) / kCallers, static_cast<size_t>(kCallers - 1)) << "a job would stay on its thread";
    std::vector<std::vector<JobOutputs>> concurrent(kRounds, std::vector<JobOutputs>(n));
    const std::vector<std::string> errors = on_threads([&](int t) {
        for (size_t r = 0; r < kRounds; r++) {
            for (size_t k = 0; k < n; k++) {
                if ((k + r * (1 + k / kCallers)) % kCallers == static_cast<size_t>(t)) {
                    concurrent[r][k] = run_job(jobs[k]);
                }
            }
        }
    });
    ASSERT_TRUE(errors.empty()) << errors.front();
    for (int r = 0; r < kRounds; r++) {
        for (size_t k = 0; k < n; k++) {
            EXPECT_EQ(differences(concurrent[static_cast<size_t>(r)][k], serial[k]), "")
                << "round " << r << ", " << jobs[k].c.name() << ": these outputs differ from the serial run's";
        }
    }
}

// ---------------------------------------------------------------------------------------------
// iabn::InPlaceABN: one layer per thread, then every layer handed to another thread.

struct LayerSpec {
    int64_t channels;
    iabn::DType dtype;
    iabn::Layout layout;
    std::vector<int64_t> shape;
    iabn::Activation act;
    double param;
    bool abs_weight;
};

std::vector<LayerSpec> layer_specs() {
    using iabn::Activation;
    using iabn::DType;
    using iabn::Layout;
    return {
        {16, DType::f32, Layout::nchw, {4, 16, 31, 29}, Activation::leaky_relu, 0.01, false},  // one-pass
        {3, DType::f64, Layout::nchw, {8, 3, 2001}, Activation::elu, 1.0, false},             // two-pass
        {24, DType::f32, Layout::nhwc, {4, 33, 35, 24}, Activation::identity, 1.0, true},
        {5, DType::f64, Layout::nhwc, {3, 41, 43, 5}, Activation::leaky_relu, 0.2, true},
    };
}

constexpr int kSteps = 2;  // forward + backward steps per layer and phase

// What a step leaves: the tensors and every per-channel value of the layer.
struct StepOutputs {
    Bytes z, dx;
    std::vector<std::vector<double>> channel_values;
};

struct LayerRun {
    LayerSpec spec;
    std::vector<Bytes> x, dz;  // inputs of each step, phase after phase
};

std::unique_ptr<iabn::InPlaceABN> make_layer(const LayerSpec& s, Rng& rng) {
    iabn::Options o;
    o.layout = s.layout;
    o.activation = s.act;
    o.activation_param = s.param;
    o.abs_weight = s.abs_weight;
    auto layer = std::make_unique<iabn::InPlaceABN>(s.channels, o, s.dtype);
    std::vector<double> w(static_cast<size_t>(s.channels)), b(w.size());
    for (double& v : w) v = rng.signed_uniform(0.5, 1.5);
    for (double& v : b) v = rng.uniform(-1.0, 1.0);
    layer->set_weight(round_to(channel_dtype(s.dtype), w));
    layer->set_bias(round_to(channel_dtype(s.dtype), b));
    return layer;
}

// Step `step` of phase `phase` on `layer`: phase 0 trains with batch statistics, phase 1 with the
// global (running) statistics.
StepOutputs run_step(iabn::InPlaceABN& layer, const LayerRun& run, int phase, int step) {
    const size_t i = static_cast<size_t>(phase * kSteps + step);
    layer.options().use_global_stats = phase == 1;
    Buffer x = from_bytes(run.spec.dtype, run.spec.shape, run.x[i]);
    Buffer dz = from_bytes(run.spec.dtype, run.spec.shape, run.dz[i]);
    layer.forward(x.ref());
    layer.backward(x.ref(), dz.ref());
    return {x.snapshot(),
            dz.snapshot(),
            {layer.running_mean(), layer.running_var(), layer.saved_mean(), layer.saved_invstd(),
             layer.weight_grad(), layer.bias_grad()}};
}

bool same_bits(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
        if (a[i].size() != b[i].size() ||
            std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(double)) != 0) {
            return false;
        }
    }
    return true;
}

TEST(Concurrency, InPlaceABNLayersOnFourThreadsMatchSerialUse) {
    IABN_TRACE_SEED();
    ASSERT_NO_THROW(iabn::set_num_threads(kKernelThreads));
    Rng rng;
    const std::vector<LayerSpec> specs = layer_specs();
    static_assert(kCallers == 4, "one layer per calling thread");
    ASSERT_EQ(specs.size(), static_cast<size_t>(kCallers));
    std::vector<LayerRun> runs;
    for (const LayerSpec& s : specs) {
        LayerRun run{s, {}, {}};
        const int64_t n = numel(s.shape);
        for (int i = 0; i < 2 * kSteps; i++) {
            std::vector<double> x(static_cast<size_t>(n)), dz(x.size());
            for (double& v : x) v = 0.5 + 1.5 * rng.normal();
            for (double& v : dz) v = 0.3 + rng.normal();
            run.x.push_back(to_bytes(s.dtype, s.shape, x));
            run.dz.push_back(to_bytes(s.dtype, s.shape, dz));
        }
        runs.push_back(std::move(run));
    }
    // Two sets of layers with the same initial weights and biases.
    const uint64_t layer_seed = rng.engine()();
    auto make_layers = [&] {
        Rng layer_rng(layer_seed);
        std::vector<std::unique_ptr<iabn::InPlaceABN>> layers;
        for (const LayerSpec& s : specs) layers.push_back(make_layer(s, layer_rng));
        return layers;
    };

    // [layer][phase * kSteps + step]
    using Trace = std::vector<std::vector<StepOutputs>>;
    Trace serial(specs.size(), std::vector<StepOutputs>(2 * kSteps));
    {
        auto layers = make_layers();
        for (int phase = 0; phase < 2; phase++) {
            for (size_t l = 0; l < specs.size(); l++) {
                for (int s = 0; s < kSteps; s++) {
                    ASSERT_NO_THROW(serial[l][static_cast<size_t>(phase * kSteps + s)] =
                                        run_step(*layers[l], runs[l], phase, s));
                }
            }
        }
    }

    Trace concurrent(specs.size(), std::vector<StepOutputs>(2 * kSteps));
    auto layers = make_layers();
    for (int phase = 0; phase < 2; phase++) {
        // Phase 0: thread t uses layer t; phase 1: layer (t + 1) % kCallers, which another thread
        // used before (the threads of phase 0 have been joined).
        const std::vector<std::string> errors = on_threads([&](int t) {
            const size_t l = static_cast<size_t>((t + phase) % kCallers);
            for (int s = 0; s < kSteps; s++) {
                concurrent[l][static_cast<size_t>(phase * kSteps + s)] = run_step(*layers[l], runs[l], phase, s);
            }
        });
        ASSERT_TRUE(errors.empty()) << errors.front();
    }

    const char* const channel_names[] = {"running_mean", "running_var", "saved_mean",
                                         "saved_invstd", "weight_grad", "bias_grad"};
    for (size_t l = 0; l < specs.size(); l++) {
        for (size_t i = 0; i < concurrent[l].size(); i++) {
            const StepOutputs& got = concurrent[l][i];
            const StepOutputs& want = serial[l][i];
            SCOPED_TRACE("layer " + std::to_string(l) + ", phase " + std::to_string(i / kSteps) + ", step " +
                         std::to_string(i % kSteps));
            EXPECT_TRUE(got.z == want.z) << "z";
            EXPECT_TRUE(got.dx == want.dx) << "dx";
            ASSERT_EQ(got.channel_values.size(), want.channel_values.size());
            for (size_t v = 0; v < got.channel_values.size(); v++) {
                EXPECT_TRUE(same_bits({got.channel_values[v]}, {want.channel_values[v]})) << channel_names[v];
            }
        }
    }
}

}  // namespace
}  // namespace iabn_test
