#include "harness.h"

#include "floor.h"   // bench/floor.h: the floor loops
#include "plan.h"    // runtime/plan.h: the runtime's view
#include "timing.h"  // bench/timing.h: the cache flush

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

// The autoschedulers' plugins (tools/tune/CMakeLists.txt passes the paths of Halide's).
#ifndef IABN_ADAMS2019_PLUGIN
#define IABN_ADAMS2019_PLUGIN "libautoschedule_adams2019.so"
#endif
#ifndef IABN_MULLAPUDI2016_PLUGIN
#define IABN_MULLAPUDI2016_PLUGIN "libautoschedule_mullapudi2016.so"
#endif
#ifndef IABN_LI2018_PLUGIN
#define IABN_LI2018_PLUGIN "libautoschedule_li2018.so"
#endif

namespace iabn_tune {

using Halide::Buffer;
using Halide::Type;
using Halide::Parameter;

// ---------------------------------------------------------------------------------------------
// Shapes

std::string Shape::label() const {
    std::string out;
    for (int64_t d : dims) out += (out.empty() ? "" : "x") + std::to_string(d);
    return out + (dims.size() == 2 ? " rank-2" : " " + layout);  // rank 2: channels are the last dim either way
}

Shape parse_shape(const std::string& text) {
    Shape sh;
    std::string dims = text, layout = "nchw";
    if (auto colon = text.find(':'); colon != std::string::npos) {
        dims = text.substr(0, colon);
        layout = text.substr(colon + 1);
    }
    if (layout != "nchw" && layout != "nhwc")
        throw std::invalid_argument("shape " + text + ": layout must be nchw or nhwc");
    std::stringstream ss(dims);
    for (std::string d; std::getline(ss, d, 'x');) {
        char* end = nullptr;
        const long long v = std::strtoll(d.c_str(), &end, 10);
        if (d.empty() || *end || v < 1) throw std::invalid_argument("shape " + text + ": bad dimension '" + d + "'");
        sh.dims.push_back(v);
    }
    if (sh.dims.size() < 2 || sh.dims.size() > 5) throw std::invalid_argument("shape " + text + ": rank must be 2..5");
    sh.layout = layout;
    int64_t numel = 1;
    for (int64_t d : sh.dims) numel *= d;
    // The view the runtime gives the kernels (runtime/plan.h).
    const iabn::detail::View v = iabn::detail::make_view(sh.dims, layout == "nchw" ? iabn::Layout::nchw : iabn::Layout::nhwc);
    sh.view_layout = v.kernel_layout == iabn::Layout::nchw ? "nchw" : "nhwc";
    sh.s = v.s, sh.c = v.c, sh.n = v.n;
    sh.stride_s = v.stride_s, sh.stride_c = v.stride_c, sh.stride_n = v.stride_n;
    if (numel >= (int64_t(1) << 31)) throw std::invalid_argument("shape " + text + ": 2^31 elements or more");
    return sh;
}

// ---------------------------------------------------------------------------------------------
// Data

namespace {

uint64_t splitmix(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
double uniform(uint64_t& state) { return (splitmix(state) >> 11) * (1.0 / 9007199254740992.0); }
// Sum of four uniforms, rescaled: close enough to normal for timing and error checks, and fast.
double normalish(uint64_t& state) {
    return (uniform(state) + uniform(state) + uniform(state) + uniform(state) - 2.0) * 1.7320508075688772;
}

uint64_t key_seed(uint64_t seed, const std::string& key) { return seed ^ std::hash<std::string>{}(key); }

// A tensor element of each storage type: Float(16) and BFloat(16) buffers hold the 16-bit
// patterns that bench::f16 and bench::bf16 hold, so their memory is read and written as those.
// 16-bit elements are the f32 path's values rounded to nearest even, so that a 16-bit run sees
// the data an f32 run sees, as closely as 16 bits allow.
void store(float& e, double v) { e = static_cast<float>(v); }
void store(double& e, double v) { e = v; }
void store(bench::f16& e, double v) { e = bench::to_f16(static_cast<float>(v)); }
void store(bench::bf16& e, double v) { e = bench::to_bf16(static_cast<float>(v)); }
double value_of(float e) { return e; }
double value_of(double e) { return e; }
double value_of(bench::f16 e) { return bench::to_float(e); }
double value_of(bench::bf16 e) { return bench::to_float(e); }

// Calls f with a value of the C++ element type of a tensor buffer of type t.
template <typename F>
auto with_element(Type t, F&& f) {
    if (t == Halide::Float(32)) return f(float{});
    if (t == Halide::Float(64)) return f(double{});
    if (t == Halide::Float(16)) return f(bench::f16{});
    if (t == Halide::BFloat(16)) return f(bench::bf16{});
    throw std::invalid_argument("iabn-tune: only f32, f64, f16 and bf16 tensors are supported");
}

// Writes value(s, c, n) into every element of a (s, c, n) buffer of element type T.
template <typename T>
void fill_view(Buffer<> b, const std::function<double(int64_t, int64_t, int64_t)>& value) {
    T* base = static_cast<T*>(b.data());
    const int64_t S = b.dim(0).extent(), C = b.dim(1).extent(), N = b.dim(2).extent();
    const int64_t ss = b.dim(0).stride(), sc = b.dim(1).stride(), sn = b.dim(2).stride();
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) store(base[s * ss + c * sc + n * sn], value(s, c, n));
}

template <typename T>
void fill_channel(Buffer<> b, const std::function<double(int64_t)>& value) {
    T* base = static_cast<T*>(b.data());
    for (int64_t c = 0; c < b.dim(0).extent(); c++) base[c] = static_cast<T>(value(c));
}

bool is_tensor_key(const std::string& key) {
    return key == "x" || key == "z" || key == "dz" || key == "x_work" || key == "dz_work";
}

// Every buffer here is dense (the nchw and nhwc views both cover one contiguous block).
size_t bytes_of(const Buffer<>& b) { return b.number_of_elements() * b.type().bytes(); }

// sqrt(sum (a - b)^2 / sum b^2), in double whatever the element type; infinite if a is not
// finite where b is.
double relative_error(const Buffer<>& a, const Buffer<>& b) {
    if (a.type() != b.type() || a.number_of_elements() != b.number_of_elements()) return INFINITY;
    double diff = 0, ref = 0;
    with_element(a.type(), [&](auto tag) {
        using T = decltype(tag);
        const T* pa = static_cast<const T*>(a.data());
        const T* pb = static_cast<const T*>(b.data());
        for (size_t i = 0, e = a.number_of_elements(); i < e; i++) {
            const double x = value_of(pa[i]), y = value_of(pb[i]);
            diff += (x - y) * (x - y);
            ref += y * y;
        }
    });
    if (!std::isfinite(diff)) return INFINITY;
    return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// Rewrites `bytes` of unrelated memory as iabn-bench does (bench/timing.h), so that the timed run
// starts with the tensors out of the cache (as in a training step, where other layers ran in
// between) and the refill's dirty lines are written back before the clock starts.
void flush_cache(int64_t bytes) {
    static std::unique_ptr<bench::CacheFlush> flush;
    if (bytes <= 0) return;
    if (!flush || flush->junk.size() * sizeof(float) != static_cast<size_t>(bytes))
        flush = std::make_unique<bench::CacheFlush>(static_cast<size_t>(bytes));
    (*flush)();
}

}  // namespace

Dataset::Dataset(const Shape& shape, Type storage, Type channel, uint64_t seed)
    : shape_(shape), storage_(storage), channel_(channel), seed_(seed) {
    with_element(storage, [](auto) {});  // throws for a type it has no element for
    // The library's per-channel buffers: f64 for f64 tensors, f32 for the others
    // (generators/types.h, element_types()).
    if (channel != (storage == Halide::Float(64) ? Halide::Float(64) : Halide::Float(32)))
        throw std::invalid_argument("iabn-tune: per-channel buffers are f64 for f64 tensors, else f32");
}

Buffer<> Dataset::allocate(Type type, int64_t count, const std::vector<halide_dimension_t>& dims) {
    const size_t bytes = ((count * type.bytes() + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    memory_.emplace_back(p, std::free);
    return Buffer<>(type, p, static_cast<int>(dims.size()), dims.data());
}

Buffer<> Dataset::make_tensor(const std::string& key) {
    const Shape& s = shape_;
    std::vector<halide_dimension_t> dims = {
        {0, static_cast<int32_t>(s.s), static_cast<int32_t>(s.stride_s), 0},
        {0, static_cast<int32_t>(s.c), static_cast<int32_t>(s.stride_c), 0},
        {0, static_cast<int32_t>(s.n), static_cast<int32_t>(s.stride_n), 0},
    };
    Buffer<> b = allocate(storage_, s.numel(), dims);
    if (key == "x_work" || key == "dz_work") {
        const Buffer<> src = get(key == "x_work" ? "x" : "dz");
        std::memcpy(b.data(), src.data(), bytes_of(src));
        return b;
    }
    uint64_t state = key_seed(seed_, key);
    std::function<double(int64_t, int64_t, int64_t)> value;
    if (key == "x") {
        // Channels with their own mean and spread: the statistics are not trivially 0 and 1.
        std::vector<double> mean(s.c), spread(s.c);
        for (int64_t c = 0; c < s.c; c++) mean[c] = 2 * uniform(state) - 1, spread[c] = 0.5 + 1.5 * uniform(state);
        value = [=, &state](int64_t, int64_t c, int64_t) { return mean[c] + spread[c] * normalish(state); };
    } else if (key == "z") {  // what a leaky_relu(0.01) forward writes
        value = [&state](int64_t, int64_t, int64_t) {
            const double y = normalish(state);
            return y >= 0 ? y : 0.01 * y;
        };
    } else {  // dz
        value = [&state](int64_t, int64_t, int64_t) { return normalish(state); };
    }
    with_element(storage_, [&](auto tag) { fill_view<decltype(tag)>(b, value); });
    return b;
}

Buffer<> Dataset::make_channel(const std::string& key, Type type) {
    Buffer<> b = allocate(type, shape_.c, {{0, static_cast<int32_t>(shape_.c), 1, 0}});
    if (key == "running_mean_work" || key == "running_var_work") {
        const Buffer<> src = get(key.substr(0, key.size() - 5));
        std::memcpy(b.data(), src.data(), bytes_of(src));
        return b;
    }
    uint64_t state = key_seed(seed_, key);
    double lo = 0, hi = 0;
    if (key == "weight")
        lo = 0.5, hi = 1.5;
    else if (key == "bias")
        lo = -0.5, hi = 0.5;
    else if (key == "running_mean")
        lo = -0.1, hi = 0.1;
    else if (key == "running_var")
        lo = 0.5, hi = 1.5;
    else if (key == "saved_invstd")
        lo = 0.5, hi = 2.0;
    else
        throw std::logic_error("iabn-tune: no data for buffer '" + key + "'");
    auto value = [&](int64_t) { return lo + (hi - lo) * uniform(state); };
    if (type == Halide::Float(32))
        fill_channel<float>(b, value);
    else
        fill_channel<double>(b, value);
    return b;
}

Buffer<> Dataset::get(const std::string& key) {
    if (auto it = buffers_.find(key); it != buffers_.end()) return it->second;
    if (key.rfind("ref:", 0) == 0) {
        throw std::logic_error("iabn-tune: reference " + key + " is read before the pipeline that makes it ran");
    }
    Buffer<> b = is_tensor_key(key) ? make_tensor(key) : make_channel(key, channel_);
    buffers_[key] = b;
    return b;
}

Buffer<> Dataset::output(const std::string& key, Type type) {
    if (auto it = buffers_.find(key); it != buffers_.end() && it->second.type() == type) return it->second;
    Buffer<> b = allocate(type, shape_.c, {{0, static_cast<int32_t>(shape_.c), 1, 0}});
    std::memset(b.data(), 0, bytes_of(b));
    buffers_[key] = b;
    return b;
}

void Dataset::set_reference(const std::string& key, const Buffer<>& b) {
    std::vector<halide_dimension_t> dims;
    for (int d = 0; d < b.dimensions(); d++) dims.push_back(b.raw_buffer()->dim[d]);
    Buffer<> copy = allocate(b.type(), b.number_of_elements(), dims);
    std::memcpy(copy.data(), b.data(), bytes_of(b));
    buffers_[key] = copy;
}

void Dataset::refill(const std::string& work, const std::string& source) {
    Buffer<> w = get(work);
    const Buffer<> s = get(source);
    std::memcpy(w.data(), s.data(), bytes_of(s));
}

// ---------------------------------------------------------------------------------------------
// Wiring: the runtime's (runtime/plan.h), on the dataset: the tensor a pipeline overwrites and the
// per-channel buffers it updates are working copies, refilled from their pristine copies before
// each run; Inputs from the previous pipeline are its reference outputs.

Wiring wiring_for(const std::string& generator) {
    const iabn::detail::Wiring r = iabn::detail::wiring(generator);
    Wiring w;
    if (!r.writer.empty()) {
        const std::string key = r.overwritten + "_work";
        w.inputs[r.overwritten] = key;  // used where the pipeline reads it too: one buffer
        w.outputs[r.writer] = key;
        w.refill[key] = r.overwritten;
    }
    for (const std::string& u : r.updated) {
        w.outputs[u] = u + "_work";
        w.refill[u + "_work"] = u;
    }
    for (const auto& [input, output] : r.from) w.inputs[input] = "ref:" + r.previous + ":" + output;
    return w;
}

const char* to_string(Scheduler s) {
    switch (s) {
        case Scheduler::manual:
            return "manual";
        case Scheduler::adams2019:
            return "Adams2019";
        case Scheduler::mullapudi2016:
            return "Mullapudi2016";
        case Scheduler::li2018:
            return "Li2018";
    }
    return "?";
}

const std::vector<Scheduler>& autoschedulers() {
    static const std::vector<Scheduler> all = {Scheduler::adams2019, Scheduler::mullapudi2016, Scheduler::li2018};
    return all;
}

const char* plugin_path(Scheduler s) {
    switch (s) {
        case Scheduler::adams2019:
            return IABN_ADAMS2019_PLUGIN;
        case Scheduler::mullapudi2016:
            return IABN_MULLAPUDI2016_PLUGIN;
        case Scheduler::li2018:
            return IABN_LI2018_PLUGIN;
        default:
            return "";
    }
}

std::string option_name(Scheduler s) {
    std::string name = to_string(s);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return name;
}

// ---------------------------------------------------------------------------------------------
// Building

namespace {

// The parameters each autoscheduler takes (Halide 21 refuses one it does not know).
Halide::AutoschedulerParams autoscheduler_params(Scheduler s, const Machine& m) {
    std::map<std::string, std::string> extra = {{"parallelism", std::to_string(m.parallelism)}};
    if (s == Scheduler::mullapudi2016) {
        extra["last_level_cache_size"] = std::to_string(m.last_level_cache);
        extra["balance"] = std::to_string(m.balance);
    }
    return {to_string(s), extra};
}

// Collects the Parameters (Inputs) a pipeline's Funcs read, by name.
class ParameterCollector : public Halide::Internal::IRGraphVisitor {
public:
    std::map<std::string, Parameter> found;

private:
    using IRGraphVisitor::visit;
    void visit(const Halide::Internal::Call* op) override {
        IRGraphVisitor::visit(op);
        if (op->param.defined()) found.emplace(op->param.name(), op->param);
    }
    void visit(const Halide::Internal::Variable* op) override {
        if (op->param.defined()) found.emplace(op->param.name(), op->param);
    }
};

// Halide makes Func names unique per process: the second "z" is "z$2". The generator's name is
// the part before the '$'.
std::string declared_name(const std::string& name) { return name.substr(0, name.find('$')); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A generator with an autoscheduler in its context skips its manual schedule
// (using_autoscheduler()); build() then applies the autoscheduler to the pipeline.
Halide::Internal::AbstractGeneratorPtr create_generator(const std::string& generator, const BuildOptions& o) {
    const bool autosched = o.scheduler != Scheduler::manual;
    const Halide::GeneratorContext context = autosched ? Halide::GeneratorContext(o.target, autoscheduler_params(o.scheduler, o.machine))
                                                       : Halide::GeneratorContext(o.target);
    auto gen = Halide::Internal::GeneratorRegistry::create("iabn_" + generator, context);
    Halide::GeneratorParamsMap values = {{"dtype", o.dtype}, {"layout", o.layout}};
    if (!autosched) {
        for (const auto& [k, v] : o.params) values[k] = v;
    }
    gen->set_generatorparam_values(values);
    return gen;
}

// Halide's plugins can fail an internal assertion in a frame the exception cannot unwind through
// (Mullapudi2016 on the channels-last backward_reduce, Halide 21): the process ends in
// std::terminate, out of reach of any catch. So each autoscheduler first runs on the same
// pipeline in a forked child; where the child dies, the failure is thrown here, as a
// std::runtime_error with Halide's message, and the table says "failed".
int terminate_report = -1;  // the child's pipe to the parent

[[noreturn]] void report_and_exit() {
    std::string what = "std::terminate (an exception that cannot unwind through the plugin)";
    try {
        if (auto e = std::current_exception()) std::rethrow_exception(e);
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
    }
    (void)!write(terminate_report, what.data(), what.size());
    _exit(3);
}

void check_autoscheduler_survives(const Halide::Pipeline& pipeline, const Halide::Target& target,
                                  const Halide::AutoschedulerParams& params) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("iabn-tune: pipe() failed");
    const pid_t child = fork();
    if (child < 0) throw std::runtime_error("iabn-tune: fork() failed");
    if (child == 0) {
        close(fds[0]);
        terminate_report = fds[1];
        std::set_terminate(report_and_exit);
        try {
            pipeline.apply_autoscheduler(target, params);
        } catch (...) {
            report_and_exit();
        }
        _exit(0);
    }
    close(fds[1]);
    std::string message;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) message.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) message.pop_back();
    throw std::runtime_error(params.name + " failed: " + (message.empty() ? "its process was killed" : message));
}

}  // namespace

bool has_generator_param(const std::string& generator, const std::string& name, const Halide::Target& target) {
    try {
        auto gen = Halide::Internal::GeneratorRegistry::create("iabn_" + generator, Halide::GeneratorContext(target));
        gen->set_generatorparam_value(name, "1");
        return true;
    } catch (const Halide::Error&) {
        return false;
    }
}

std::unique_ptr<Compiled> build(const std::string& generator, const BuildOptions& o) {
    auto c = std::make_unique<Compiled>();
    c->generator = generator;
    auto gen = create_generator(generator, o);
    c->pipeline = gen->build_pipeline();

    ParameterCollector collector;
    std::vector<Halide::Internal::Function> outputs;
    for (const Halide::Func& f : c->pipeline.outputs()) {
        outputs.push_back(f.function());
        c->output_names.push_back(declared_name(f.name()));
        c->output_types.push_back(f.types().at(0));
    }
    for (const auto& [name, f] : Halide::Internal::build_environment(outputs)) f.accept(&collector);
    for (const Halide::Argument& a : c->pipeline.infer_arguments()) {
        auto it = collector.found.find(a.name);
        if (it == collector.found.end()) {
            throw std::runtime_error("iabn-tune: cannot find the Parameter of argument '" + a.name + "' of " +
                                     generator);
        }
        c->inputs.emplace(declared_name(a.name), it->second);
    }

    if (o.scheduler != Scheduler::manual) {
        if (const Shape* sh = o.estimates) {
            // Tensors are (s, c, n) views, every other buffer is per channel.
            auto extents = [&](int dims) {
                return dims == 3 ? std::vector<int64_t>{sh->s, sh->c, sh->n} : std::vector<int64_t>{sh->c};
            };
            for (auto& [name, p] : c->inputs) {
                if (!p.is_buffer()) continue;
                const auto e = extents(p.dimensions());
                for (int d = 0; d < p.dimensions(); d++) {
                    p.set_min_constraint_estimate(d, 0);
                    p.set_extent_constraint_estimate(d, static_cast<int32_t>(e[d]));
                }
            }
            for (Halide::Func f : c->pipeline.outputs()) {
                Halide::Region r;
                for (int64_t e : extents(f.dimensions())) r.emplace_back(0, static_cast<int32_t>(e));
                f.set_estimates(r);
            }
        }
        const auto t0 = std::chrono::steady_clock::now();
        const Halide::AutoschedulerParams params = autoscheduler_params(o.scheduler, o.machine);
        check_autoscheduler_survives(c->pipeline, o.target, params);
        c->schedule_source = c->pipeline.apply_autoscheduler(o.target, params).schedule_source;
        c->schedule_s = seconds_since(t0);
    }

    c->owner = std::move(gen);
    jit_compile(*c, o.target);
    return c;
}

void jit_compile(Compiled& c, const Halide::Target& target) {
    const auto t0 = std::chrono::steady_clock::now();
    c.pipeline.compile_jit(target);
    c.jit_target = target;
    c.compile_s = seconds_since(t0);
}

// ---------------------------------------------------------------------------------------------
// Code keys

namespace {

struct KeyServer {
    pid_t pid = -1;
    FILE* requests = nullptr;   // to the zygote
    FILE* responses = nullptr;  // from it
};
KeyServer server;

std::string escape(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\t', ' ');
    return s;
}

// In a fresh child of the zygote: build and lower, hash the text.
std::string lower_and_hash(const std::string& request) {
    std::vector<std::string> f;
    std::stringstream ss(request);
    for (std::string part; std::getline(ss, part, '\t');) f.push_back(part);
    if (f.size() < 4) return "err bad request";
    BuildOptions o;
    o.target = Halide::Target(f[1]);
    o.dtype = f[2];
    o.layout = f[3];
    for (size_t i = 4; i < f.size(); i++) {
        const auto eq = f[i].find('=');
        if (eq != std::string::npos) o.params[f[i].substr(0, eq)] = f[i].substr(eq + 1);
    }
    try {
        auto gen = create_generator(f[0], o);
        Halide::Pipeline p = gen->build_pipeline();
        std::ostringstream code;
        code << p.compile_to_module(p.infer_arguments(), "iabn_tune_" + f[0], o.target);
        std::ostringstream key;
        key << std::hex << std::hash<std::string>{}(code.str()) << "-" << std::dec << code.str().size();
        if (const char* dir = std::getenv("IABN_TUNE_DUMP_CODE")) {  // for debugging the de-duplication
            std::ofstream(std::string(dir) + "/" + f[0] + "-" + key.str() + ".txt") << code.str();
        }
        return "ok " + key.str();
    } catch (const std::exception& e) {
        return "err " + escape(e.what());
    }
}

[[noreturn]] void zygote_loop(int in_fd, int out_fd) {
    FILE* in = fdopen(in_fd, "r");
    FILE* out = fdopen(out_fd, "w");
    std::string line;
    for (int ch; (ch = std::fgetc(in)) != EOF;) {
        if (ch != '\n') {
            line += static_cast<char>(ch);
            continue;
        }
        int result[2];
        std::string answer;
        if (pipe(result) != 0) {
            answer = "err pipe failed";
        } else if (const pid_t child = fork(); child == 0) {
            std::fclose(in);
            close(result[0]);
            const std::string r = lower_and_hash(line) + "\n";
            if (write(result[1], r.data(), r.size()) < 0) _exit(1);
            _exit(0);
        } else {
            close(result[1]);
            char buf[4096];
            for (ssize_t n; (n = read(result[0], buf, sizeof buf)) > 0;) answer.append(buf, n);
            close(result[0]);
            int status = 0;
            waitpid(child, &status, 0);
            if (answer.empty()) answer = "err lowering crashed (status " + std::to_string(status) + ")\n";
        }
        if (answer.back() != '\n') answer += "\n";
        std::fputs(answer.c_str(), out);
        std::fflush(out);
        line.clear();
    }
    _exit(0);
}

}  // namespace

void start_code_key_server() {
    if (server.pid > 0) return;
    int req[2], resp[2];
    if (pipe(req) != 0 || pipe(resp) != 0) throw std::runtime_error("iabn-tune: pipe() failed");
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("iabn-tune: fork() failed");
    if (pid == 0) {
        close(req[1]);
        close(resp[0]);
        zygote_loop(req[0], resp[1]);
    }
    close(req[0]);
    close(resp[1]);
    server.pid = pid;
    server.requests = fdopen(req[1], "w");
    server.responses = fdopen(resp[0], "r");
}

std::string code_key(const std::string& generator, const BuildOptions& o) {
    if (server.pid <= 0) throw std::logic_error("iabn-tune: start_code_key_server() was not called");
    std::string request = generator + "\t" + o.target.to_string() + "\t" + o.dtype + "\t" + o.layout;
    for (const auto& [k, v] : o.params) request += "\t" + k + "=" + v;
    std::fputs((request + "\n").c_str(), server.requests);
    std::fflush(server.requests);
    std::string answer;
    for (int ch; (ch = std::fgetc(server.responses)) != EOF && ch != '\n';) answer += static_cast<char>(ch);
    if (answer.rfind("ok ", 0) == 0) return answer.substr(3);
    throw std::runtime_error(answer.rfind("err ", 0) == 0 ? answer.substr(4) : "iabn-tune: the lowering process died");
}

// ---------------------------------------------------------------------------------------------
// Running

namespace {

void bind_scalar(Parameter& p, const Scalars& s) {
    const std::string& n = p.name();
    auto set = [&](double v) {
        if (p.type() == Halide::Float(64))
            p.set_scalar<double>(v);
        else if (p.type() == Halide::Float(32))
            p.set_scalar<float>(static_cast<float>(v));
        else if (p.type() == Halide::Bool())
            p.set_scalar<bool>(v != 0);
        else if (p.type() == Halide::Int(32))
            p.set_scalar<int32_t>(static_cast<int32_t>(v));
        else
            throw std::runtime_error("iabn-tune: scalar '" + n + "' has an unexpected type");
    };
    if (n == "epsilon")
        set(s.epsilon);
    else if (n == "momentum")
        set(s.momentum);
    else if (n == "activation_param")
        set(s.activation_param);
    else if (n == "unbiased_running_var")
        set(s.unbiased_running_var);
    else if (n == "abs_weight")
        set(s.abs_weight);
    else if (n == "batch_stats")
        set(s.batch_stats);
    else if (n == "activation")
        set(s.activation);
    else if (n == "threads")
        set(s.threads);
    else
        throw std::runtime_error("iabn-tune: no value for scalar Input '" + n + "'");
}

}  // namespace

ShapeResult run(Compiled& c, Dataset& data, const Scalars& scalars, const RunOptions& o, bool reference) {
    ShapeResult r;
    const Wiring w = wiring_for(c.generator);
    std::vector<Buffer<>> outs;
    std::vector<std::string> out_keys;
    try {
        for (auto& [name, p] : c.inputs) {
            if (p.is_buffer()) {
                auto it = w.inputs.find(name);
                p.set_buffer(data.get(it == w.inputs.end() ? name : it->second));
            } else {
                bind_scalar(p, scalars);
            }
        }
        for (size_t i = 0; i < c.output_names.size(); i++) {
            const std::string& name = c.output_names[i];
            auto it = w.outputs.find(name);
            const std::string key = it != w.outputs.end() ? it->second : "out:" + c.generator + ":" + name;
            outs.push_back(it != w.outputs.end() ? data.get(key) : data.output(key, c.output_types[i]));
            out_keys.push_back(key);
        }
    } catch (const std::exception& e) {
        r.error = e.what();
        return r;
    }
    Halide::Realization realization(outs);
    std::vector<double> times;
    for (int rep = 0; rep < o.warmup + o.repeats; rep++) {
        for (const auto& [work, source] : w.refill) data.refill(work, source);
        flush_cache(o.flush_bytes);
        const auto t0 = std::chrono::steady_clock::now();
        try {
            c.pipeline.realize(realization, c.jit_target);
        } catch (const Halide::Error& e) {
            r.error = std::string("run failed: ") + e.what();
            return r;
        }
        const double ms = seconds_since(t0) * 1e3;
        if (rep == 0 && (reference || o.check)) {
            for (size_t i = 0; i < outs.size(); i++) {
                const std::string ref = "ref:" + c.generator + ":" + c.output_names[i];
                if (reference) {
                    data.set_reference(ref, outs[i]);
                } else {
                    r.rel_error = std::max(r.rel_error, relative_error(outs[i], data.get(ref)));
                }
            }
            if (!(r.rel_error <= o.tolerance)) {
                std::ostringstream msg;
                msg << "incorrect (rel err " << r.rel_error << ")";
                r.error = msg.str();
                return r;
            }
        }
        if (rep >= o.warmup) times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    r.ms = times.empty() ? 0 : times[times.size() / 2];
    r.ok = true;
    return r;
}

// ---------------------------------------------------------------------------------------------
// The floor

namespace {
template <typename T>
double fastest_floor(Dataset& data, bool backward, const RunOptions& o) {
    double best = INFINITY;
    // The 16-bit floors have one variant (their conversions are chosen at run time, floor.h).
    const size_t variants = sizeof(T) >= 4 ? bench::floor_variants().size() : 1;
    for (size_t v = 0; v < variants; v++) {
        std::vector<double> times;
        for (int rep = 0; rep < o.warmup + o.repeats; rep++) {
            // Only the tensors of the pass (the forward's dataset has no z or dz to make).
            const std::string work = backward ? "dz_work" : "x_work";
            data.refill(work, backward ? "dz" : "x");
            flush_cache(o.flush_bytes);
            T* rewritten = static_cast<T*>(data.get(work).data());
            const T* z = backward ? static_cast<const T*>(data.get("z").data()) : nullptr;
            const size_t n = static_cast<size_t>(data.shape().numel());
            const auto t0 = std::chrono::steady_clock::now();
            if (backward)
                bench::floor_combine(rewritten, z, n, static_cast<int>(v));
            else
                bench::floor_scale(rewritten, n, static_cast<int>(v));
            if (rep >= o.warmup) times.push_back(seconds_since(t0) * 1e3);
        }
        std::sort(times.begin(), times.end());
        best = std::min(best, times[times.size() / 2]);
    }
    return best;
}
}  // namespace

double floor_ms(Dataset& data, bool backward, const RunOptions& o) {
    // The floor of the tensor's own dtype: a 16-bit tensor moves half the bytes of an f32 one.
    return with_element(data.get("x").type(), [&](auto tag) { return fastest_floor<decltype(tag)>(data, backward, o); });
}

}  // namespace iabn_tune
