// iabn: In-Place Activated BatchNorm kernels (Halide AOT) behind a thin C++ API.
//
// forward() normalizes x with batch (or running) statistics, applies an invertible activation and
// writes the result z over x. backward() recovers the pre-activation from z, computes the gradient
// and writes dx over dz. Only z has to be kept between the two passes.
// The math contract is documented in docs/semantics.md.
#pragma once

#include "iabn/vocabulary.h"

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace iabn {

#define IABN_ENUMERATOR(name) name,
enum class DType { IABN_DTYPE_LIST(IABN_ENUMERATOR) };
// Where a buffer lives. Device::cuda: `data` is a CUDA device pointer (CUdeviceptr). Device::opencl:
// `data` is a cl_mem (the whole buffer: OpenCL has no pointer arithmetic).
enum class Device { IABN_DEVICE_LIST(IABN_ENUMERATOR) };
enum class Layout { IABN_LAYOUT_LIST(IABN_ENUMERATOR) };  // channels at dim 1, or the last dim
enum class Activation { IABN_ACTIVATION_LIST(IABN_ENUMERATOR) };
#undef IABN_ENUMERATOR

// Every activation, in the order of the enum (its integer codes are 0 .. size - 1).
#define IABN_ACTIVATION_VALUE(name) Activation::name,
inline constexpr Activation kActivations[] = {IABN_ACTIVATION_LIST(IABN_ACTIVATION_VALUE)};
#undef IABN_ACTIVATION_VALUE
inline constexpr int kActivationCount = static_cast<int>(sizeof(kActivations) / sizeof(kActivations[0]));

// Non-owning view of dense, row-major memory (last dim fastest).
struct TensorRef {
    void* data = nullptr;
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    Device device = Device::cpu;
};

struct Options {
    Activation activation = Activation::identity;
    double activation_param = 1.0;  // slope of leaky_relu, alpha of elu; must be > 0
    double epsilon = 1e-5;
    double momentum = 0.9;  // running = momentum * running + (1 - momentum) * batch
    Layout layout = Layout::nchw;
    bool training = true;
    bool use_global_stats = false;
    bool unbiased_running_var = false;  // running_var uses var * M / (M - 1)
    bool abs_weight = false;            // effective scale |weight| + epsilon (mapillary convention)
    // Device::cuda tensors: the CUstream (cudaStream_t) the kernels run on, in the calling
    // thread's current CUDA context; nullptr is the default stream.
    void* cuda_stream = nullptr;
    // Device::opencl tensors: the cl_command_queue the kernels are enqueued on (required); the
    // cl_mem buffers belong to its context.
    void* opencl_queue = nullptr;
    // Device tensors: three checks read [C] values on the host, and so wait for the queue (a call
    // otherwise enqueues its work and returns): the running variance with global statistics
    // (>= 0), the backward's effective scale (non-zero, normal), and a synchronized pass's
    // gathered counts. With them, a refused value is an iabn::Error and nothing is written, as for
    // every other bad input. false skips them on a device (host tensors are always checked): no
    // wait, and a value they would refuse is not reported; its channels' outputs become inf or
    // NaN (wrong counts: wrong statistics). For training loops that know their values are valid.
    bool check_device_values = true;
    // Device::cuda: device memory the call uses for its scratch instead of the workspace iabn keeps
    // per stream (release_workspace): at least workspace_bytes(x, options) bytes on the tensors'
    // device, free for the call's stream (it is used in stream order, like the tensors). With it
    // iabn allocates and keeps nothing: for frameworks whose allocator must own all device memory
    // (CUDA graph capture). Device::opencl does not take one yet (an iabn::Error: a cl_mem cannot be
    // cut into ranges without creating sub-buffers); host calls ignore it.
    void* workspace = nullptr;
    size_t workspace_size = 0;
};

// Per-channel buffers, each of shape [C]; f64 for f64 tensors, f32 otherwise: f16 and bf16
// tensors (stored in 16 bits, computed in f32) come with f32 state, as in PyTorch's mixed precision.
// weight and bias may be empty (data == nullptr): scale 1 and shift 0.
struct ChannelState {
    TensorRef weight, bias, running_mean, running_var, saved_mean, saved_invstd;
};

// Parameter gradients, each [C]; an empty one (data == nullptr) is not computed.
// They are overwritten, not accumulated.
struct ParamGrads {
    TensorRef weight_grad, bias_grad;
};

// Every error raised by iabn.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A refused argument (docs/semantics.md, "Bad input": the list of refused inputs). Thrown before any
// buffer is written: every caller buffer is what it was. Other Errors come from the machine (a GPU
// library that cannot be loaded, a context missing, a kernel that failed: those can leave outputs
// partly written).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

// x becomes z = act(g * (x - mean) * invstd + b).
// Training with batch statistics also writes saved_mean, saved_invstd and updates the running
// statistics; with global statistics (!training || use_global_stats) it only reads them.
void forward(const TensorRef& x, const ChannelState& state, const Options& options);

// dz becomes dx. z (the forward output) is read-only and must not overlap dz.
// Batch statistics read saved_invstd; global statistics read running_var.
void backward(const TensorRef& z, const TensorRef& dz, const ChannelState& state,
              const ParamGrads& grads, const Options& options);

// ---- Batch statistics across processes (synchronized InPlace-ABN) ----
//
// A training pass with batch statistics, split in two around an exchange that the caller makes
// with its own transport (MPI_Allgather, ncclAllGather, torch.distributed.all_gather):
//   1. *_partials: this process's per-channel partials into `partials`, an f64 buffer of shape
//      [sync_partials_size(C)] on the tensor's device;
//   2. the caller all-gathers them into `gathered`, f64 [P, sync_partials_size(C)]: row p holds
//      the partials of process p, every process getting the same rows in the same (rank) order;
//   3. *_finish merges the rows in row order, so every process computes the same bits, and does
//      the rest of the pass over its local tensor.
// The statistics are those of the concatenated batch whatever each process's batch size (the
// partials carry element counts and are merged exactly: Chan's parallel update of mean and sum of
// squared deviations); the running variance's Bessel factor uses the global count. Parameter
// gradients stay local (each process's own sums; a data-parallel framework all-reduces them).
// Options must have batch statistics (training && !use_global_stats); global statistics need
// no exchange, and forward()/backward() (with their one-pass kernels) need none either.
// A local tensor needs 1 element per channel; the global count must be >= 2.
// Device tensors: `partials` and `gathered` are device buffers too (an exchange on the device,
// e.g. NCCL), and *_finish reads the counts of `gathered` on the host (it waits for the queue;
// Options::check_device_values = false skips that check).

// The f64 values one process contributes per call: 2 * channels + 1 (8 * (2C + 1) bytes).
int64_t sync_partials_size(int64_t channels);

// Forward, step 1: the local count, mean and sum of squared deviations of x (read only).
void forward_partials(const TensorRef& x, const TensorRef& partials, const Options& options);
// Forward, step 3: x becomes z, normalized with the merged statistics of `gathered`; writes
// saved_mean and saved_invstd and updates the running statistics, as forward() does.
void forward_finish(const TensorRef& x, const ChannelState& state, const TensorRef& gathered, const Options& options);

// Backward, step 1: the local count and sums of dy and dy * xhat (z and dz read only); writes
// the local parameter gradients (grads) as backward() would for this process's batch.
void backward_partials(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const ParamGrads& grads,
                       const TensorRef& partials, const Options& options);
// Backward, step 3: dz becomes dx, with the merged sums of `gathered` (state.saved_invstd: the
// one forward_finish wrote).
void backward_finish(const TensorRef& z, const TensorRef& dz, const ChannelState& state, const TensorRef& gathered,
                     const Options& options);

// Threads used by the kernels (process-wide). n >= 1.
void set_num_threads(int n);

// This library's version, "major.minor.patch" (the repository's VERSION file; CHANGELOG.md).
std::string version();

// The compiled target the dispatcher runs on this machine, e.g. "x86-64-linux-avx2-fma-f16c-sse41".
std::string kernel_target();

// The schedule numbers the CPU kernels were generated with: "schedule params: <file>" (CMake's
// IABN_SCHEDULE_PARAMS: the committed schedules/<arch>.params or a file of one's own), then a
// line per kernel and dispatch level, "<kernel> <level>: <the params line it took>".
std::string schedule_info();

// Whether this build has CUDA kernels (CMake option IABN_CUDA). Device::cuda tensors then take
// device pointers (every tensor and per-channel buffer of a call on the same device); the calls
// run in the calling thread's current CUDA context, on Options::cuda_stream. The CUDA driver
// (libcuda.so.1) is loaded at the first such call.
bool has_cuda_kernels();
// Whether this build has OpenCL kernels (CMake option IABN_OPENCL). Device::opencl tensors then
// take cl_mem buffers, and the calls enqueue on Options::opencl_queue. The OpenCL ICD loader
// (libOpenCL.so.1) is loaded at the first such call.
bool has_opencl_kernels();
// Device calls enqueue their kernels on the caller's stream or queue and return without waiting
// for them, like any CUDA or OpenCL library call: synchronize before reading results on the host.
// Two checks read [C] values on the host and so wait for the queue: the running variance with
// global statistics, and the backward's effective scale when a weight is given.
// A training forward or backward on a device runs three kernels (block partials, a per-channel
// finish, the element-wise apply) and allocates no device memory after the first call on a
// stream or queue: its scratch (O(C x blocks) bytes) is kept per context and stream/queue for the
// next call there (calls on one stream from several threads take turns on it).

// Releases the device memory kept for the calls on `options`' stream (Device::cuda, in the
// calling thread's current context) or queue (Device::opencl), in that stream's order: work
// enqueued before still uses it safely. Call it before destroying a stream, queue or context
// that iabn ran on; the next call there allocates again. Device::cpu keeps none (a no-op).
void release_workspace(Device device, const Options& options);

// The bytes of Options::workspace a device call on a tensor of x's shape (in options.layout)
// needs at most: O(C x blocks). Throws iabn::InvalidArgument for a shape no call takes (rank < 2,
// a dimension < 1).
size_t workspace_bytes(const TensorRef& x, const Options& options);

// Paddle's activation names: "identity" or "", "leaky_relu", "elu". "relu" is rejected because it
// cannot be inverted.
Activation parse_activation(const std::string& name);
const char* to_string(Activation activation);
const char* to_string(DType dtype);
const char* to_string(Layout layout);
size_t dtype_size(DType dtype);

// Owning convenience layer: holds weight (1), bias (0), running mean (0), running var (1), the
// saved statistics and the parameter gradients, in the per-channel dtype that matches `dtype`.
// A value type: a copy owns copies of every per-channel buffer (the two layers then train
// independently); a moved-from layer is empty (0 channels) and its forward/backward throw.
class InPlaceABN {
public:
    // channels in [1, 2^31 - 1].
    explicit InPlaceABN(int64_t channels, const Options& options = Options(),
                        DType dtype = DType::f32);
    InPlaceABN(const InPlaceABN& other);
    InPlaceABN(InPlaceABN&& other) noexcept;
    InPlaceABN& operator=(InPlaceABN other) noexcept;  // copy or move, then swap
    ~InPlaceABN() = default;

    void forward(const TensorRef& x);                         // x becomes z
    void backward(const TensorRef& z, const TensorRef& dz);   // dz becomes dx; fills the grads

    int64_t channels() const { return channels_; }
    DType dtype() const { return dtype_; }
    Options& options() { return options_; }
    const Options& options() const { return options_; }
    const ChannelState& state() const { return state_; }
    const ParamGrads& grads() const { return grads_; }

    // Per-channel values as double, whatever their storage type.
    std::vector<double> weight() const { return read(state_.weight); }
    std::vector<double> bias() const { return read(state_.bias); }
    std::vector<double> running_mean() const { return read(state_.running_mean); }
    std::vector<double> running_var() const { return read(state_.running_var); }
    std::vector<double> saved_mean() const { return read(state_.saved_mean); }
    std::vector<double> saved_invstd() const { return read(state_.saved_invstd); }
    std::vector<double> weight_grad() const { return read(grads_.weight_grad); }
    std::vector<double> bias_grad() const { return read(grads_.bias_grad); }
    void set_weight(const std::vector<double>& values) { write(state_.weight, values); }
    void set_bias(const std::vector<double>& values) { write(state_.bias, values); }

private:
    std::vector<double> read(const TensorRef& t) const;
    void write(const TensorRef& t, const std::vector<double>& values);
    TensorRef channel_buffer(double init);
    std::array<TensorRef*, 8> buffers();  // state_ then grads_, in the order of storage_
    void bind();    // points every per-channel TensorRef at its storage
    void unbind();  // leaves the layer empty: 0 channels, no buffers

    int64_t channels_;
    DType dtype_;
    Options options_;
    std::vector<std::vector<unsigned char>> storage_;
    ChannelState state_;
    ParamGrads grads_;
};

}  // namespace iabn
