// The tuner's test bench: builds one iabn generator with given GeneratorParams through Halide's
// JIT, binds it to tensors laid out exactly as the runtime lays them out, runs it in place, times
// it and checks its outputs against a reference run.
#pragma once

#include "Halide.h"
#include "params_file.h"  // ParamValues

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace iabn_tune {

// A tensor shape and its declared layout, and the 3-D view (s, c, n) the runtime builds for it
// (iabn::detail::make_view, runtime/plan.h).
struct Shape {
    std::vector<int64_t> dims;
    std::string layout;       // as declared: nchw or nhwc
    std::string view_layout;  // the kernels' layout: nchw or nhwc
    int64_t s = 0, c = 0, n = 0;
    int64_t stride_s = 0, stride_c = 0, stride_n = 0;
    int64_t numel() const { return s * c * n; }
    std::string label() const;  // e.g. "32x256x56x56 nchw", "4096x1024 rank-2"
};

Shape parse_shape(const std::string& text);  // "32x256x56x56:nchw", "4096x1024" (layout nchw by default)

// Scalar Inputs the pipelines take, by Input name (a training step with leaky_relu(0.01)).
struct Scalars {
    double epsilon = 1e-5, momentum = 0.9, activation_param = 0.01;
    bool unbiased_running_var = false, abs_weight = false, batch_stats = true;
    int activation = 1;  // iabn::Activation::leaky_relu
    int threads = 2;
};

// Every buffer the pipelines of one shape read or write, by key:
//   tensors "x", "z", "dz" (pristine, never written), "x_work", "dz_work" (rewritten in place);
//   channel buffers "weight", "bias", "running_mean", "running_var", "saved_invstd" (pristine),
//   "running_mean_work", "running_var_work" (updated in place);
//   "out:<generator>:<output>" (a pipeline's other outputs), "ref:<generator>:<output>" (copies of
//   the reference run's outputs, which later pipelines of a pass read as their inputs).
// Tensors are of `storage` (Float(32), Float(64), Float(16) or BFloat(16); 16-bit ones hold the
// f32 values rounded to nearest even), the per-channel buffers of `channel` (f64 for f64 tensors,
// else f32, as in the library).
class Dataset {
public:
    Dataset(const Shape& shape, Halide::Type storage, Halide::Type channel, uint64_t seed);
    const Shape& shape() const { return shape_; }
    bool has(const std::string& key) const { return buffers_.count(key) != 0; }
    Halide::Buffer<> get(const std::string& key);  // creates the pristine and work buffers on first use
    Halide::Buffer<> output(const std::string& key, Halide::Type type);     // a channel-sized output
    void set_reference(const std::string& key, const Halide::Buffer<>& b);  // deep copy
    // Copies `source` over `work` (same shape): the in-place buffers before each run.
    void refill(const std::string& work, const std::string& source);

private:
    Halide::Buffer<> make_tensor(const std::string& key);
    Halide::Buffer<> make_channel(const std::string& key, Halide::Type type);
    Halide::Buffer<> allocate(Halide::Type type, int64_t count, const std::vector<halide_dimension_t>& dims);

    Shape shape_;
    Halide::Type storage_, channel_;
    uint64_t seed_;
    std::map<std::string, Halide::Buffer<>> buffers_;
    std::vector<std::shared_ptr<void>> memory_;
};

// How one generator is wired to a Dataset: which key each Input and Output uses, and which
// Outputs are updated in place (refilled from their pristine source before every run).
struct Wiring {
    std::map<std::string, std::string> inputs;   // Input name -> dataset key (default: same name)
    std::map<std::string, std::string> outputs;  // Output name -> dataset key (default: out:<gen>:<name>)
    std::map<std::string, std::string> refill;   // dataset key -> pristine key
};
Wiring wiring_for(const std::string& generator);

// Halide's CPU autoschedulers beside the manual schedule (Anderson2021 schedules GPUs only).
enum class Scheduler { manual, adams2019, mullapudi2016, li2018 };
const char* to_string(Scheduler s);  // Halide's name: "Adams2019", ...
// Every autoscheduler, in the tuner's table order; each one's plugin (a shared library that
// registers it with libHalide when loaded) and its option name (adams2019, ...).
const std::vector<Scheduler>& autoschedulers();
const char* plugin_path(Scheduler s);
std::string option_name(Scheduler s);

// What the autoschedulers are told of the machine (each takes the parameters it knows).
struct Machine {
    int parallelism = 2;                         // threads
    int64_t last_level_cache = 32 * 1000 * 1000;  // bytes (Mullapudi2016)
    int balance = 40;                            // compute to memory cost (Mullapudi2016)
};

struct BuildOptions {
    Halide::Target target;
    std::string dtype, layout;
    ParamValues params;  // manual schedule only
    Scheduler scheduler = Scheduler::manual;
    Machine machine;  // autoschedulers only
    // Autoschedulers only: plan for this shape instead of the generators' estimates. Their
    // schedules assume the estimated extents (ShiftInwards tails reach before the buffer when a
    // dim is smaller), so each shape gets a schedule made for it: their best case.
    const Shape* estimates = nullptr;
};

// A compiled pipeline and the Parameters it reads, found by name in its IR.
struct Compiled {
    std::string generator;                                   // without the iabn_ prefix
    Halide::Internal::AbstractGeneratorPtr owner;  // keeps the generator alive with its pipeline
    Halide::Pipeline pipeline;
    std::map<std::string, Halide::Parameter> inputs;
    std::vector<std::string> output_names;
    std::vector<Halide::Type> output_types;
    Halide::Target jit_target;    // what it was JIT-compiled for
    std::string schedule_source;  // an autoscheduler's schedule, as C++
    double compile_s = 0, schedule_s = 0;
};

// Builds (and autoschedules) the pipeline and JIT-compiles it. Throws Halide::Error.
std::unique_ptr<Compiled> build(const std::string& generator, const BuildOptions& options);

// Which candidates lower to the same code (a tunable the pipeline does not read, a value the
// schedule clamps away) is decided by comparing the lowered code. Halide names things with
// process-wide counters (the second Func "z" is "z$2", and closures are laid out by name), so
// the same schedule lowered twice in one process gives different text. Hence the lowering runs
// in a child of a process forked at startup, before anything was built: every child starts from
// the same counters, and equal schedules give equal text. start_code_key_server() must run
// before any other Halide work (and before threads exist); code_key() returns a hash of the
// lowered code of a manual-schedule build, or throws with the compile error.
void start_code_key_server();
std::string code_key(const std::string& generator, const BuildOptions& options);
void jit_compile(Compiled& c, const Halide::Target& target);

// Whether the generator has a GeneratorParam of that name (probes with set_generatorparam_value).
bool has_generator_param(const std::string& generator, const std::string& name, const Halide::Target& target);

struct RunOptions {
    int warmup = 1, repeats = 5;
    int64_t flush_bytes = 64 << 20;  // read this much other memory before each timed run (0: don't)
    double tolerance = 1e-5;         // norm-wise relative error against the reference
    bool check = true;               // compare the first run's outputs with the references
};

struct ShapeResult {
    bool ok = false;
    std::string error;     // why not ok: a runtime error, or the error above tolerance
    double ms = 0;         // median
    double rel_error = 0;  // worst over outputs, against the reference
};

// Runs `c` on the dataset: refills, flushes, times warmup + repeats runs, and compares the first
// run's outputs with the references (when `reference` is false) or stores them as the references.
ShapeResult run(Compiled& c, Dataset& data, const Scalars& scalars, const RunOptions& options, bool reference);

// The memory-bandwidth floor of a pass on the dataset's tensor, as iabn-bench measures it
// (bench/floor.h): the fastest floor loop over the bytes the pass must move (forward: the tensor
// rewritten in place; backward: dz rewritten from dz and z), timed as run() times, median in ms.
double floor_ms(Dataset& data, bool backward, const RunOptions& options);

}  // namespace iabn_tune
