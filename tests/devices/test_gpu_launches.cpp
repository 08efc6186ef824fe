// The GPU schedules' launches, scratch and ordering, watched where they run here: on OpenCL
// (PoCL), through DeviceProbe (device_probe.h). CUDA runs the same schedules (schedules/gpu.h),
// so the grid limits checked here (CUDA's: 2^31 - 1 blocks on x, 65535 on y and z) hold there too.
//  * grid: shapes past every limit (16.8M channels-last rows, 70000 batch rows, 100000 and 3M
//    channels, 2^32 elements), launched as a dry run: no dimension over its limit, and the
//    in-place apply covers every element;
//  * the apply in several launches, for real: 70000 batch rows (more than one launch's 65535);
//  * scratch: the device memory of a call is O(C x blocks), not O(C x lanes x rows);
//  * structure: a steady-state call launches at most 3 kernels (2 for an eval forward), creates no
//    buffer and does not wait for the device; a queue's workspace lives until released;
//  * ordering: a call on a queue held back by an event returns (it enqueues, it does not wait);
//  * other users of Halide's OpenCL runtime in the process still work around iabn's calls.
#include "case_runner.h"
#include "device_driver.h"
#include "device_mirror.h"
#include "device_probe.h"

#include <HalideRuntime.h>
#include <HalideRuntimeOpenCL.h>

#include <chrono>
#include <functional>
#include <tuple>
#include <future>

namespace iabn_test {
namespace {

constexpr size_t kMaxBlocksX = 2147483647, kMaxBlocksYZ = 65535;

std::string skip_reason(iabn::Device device = iabn::Device::opencl) {
    Case c;
    c.device = device;
    return device_skip_reason(c);
}

// Whether the environment variable `name` is set to `value`.
bool getenv_is(const char* name, const std::string& value) {
    const char* v = std::getenv(name);
    return v && value == v;
}

// The nchw block partials on 128-bit vectors (generators/block_partials.h names their kernels).
bool is_vector_partials(const Launch& l) { return l.kernel.find("nb_vectors") != std::string::npos; }
bool is_apply(const Launch& l) { return l.kernel.rfind("_kernel_z_s1", 0) == 0 || l.kernel.rfind("_kernel_dx_s1", 0) == 0; }

int64_t count(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// A case's buffers on the host: inputs drawn afresh, x, dz and every per-channel buffer (a
// DeviceMirror copies them to the device).
struct CaseBuffers {
    Rng rng;
    Inputs in;
    Buffer x, dz;
    ChannelBuffers cb;
    explicit CaseBuffers(const Case& c)
        : in(make_inputs(c, rng)), x(c.dtype, c.shape), dz(c.dtype, c.shape),
          cb(ChannelBuffers::filled(channel_dtype(c.dtype), in)) {
        x.set(in.x);
        dz.set(make_dz(c, in, rng));
    }
};

struct Extreme {
    std::string name;
    std::vector<int64_t> shape;
    iabn::Layout layout;
};

class GridLimits : public ::testing::TestWithParam<Extreme> {};

// Forward (batch and global statistics) and backward over a tensor far larger than this machine
// holds: the launches are recorded, not run (the tensor is a small cl_mem), so only the grid is
// checked.
TEST_P(GridLimits, EveryLaunchWithinTheGridAndTheApplyCoversTheTensor) {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    const Extreme& e = GetParam();
    TestDevice* dev = test_device(iabn::Device::opencl);
    const int64_t C = e.layout == iabn::Layout::nchw ? e.shape[1] : e.shape.back();
    const int64_t numel = count(e.shape);
    void* x = dev->alloc(256);
    void* dz = dev->alloc(256);
    const std::vector<float> ones(static_cast<size_t>(C), 1.0f);
    std::vector<void*> channel;
    auto per_channel = [&] {
        void* m = dev->alloc(static_cast<size_t>(C) * sizeof(float));
        dev->upload(m, ones.data(), ones.size() * sizeof(float));
        channel.push_back(m);
        return iabn::TensorRef{m, iabn::DType::f32, {C}, iabn::Device::opencl};
    };
    const iabn::ChannelState st{per_channel(), per_channel(), per_channel(), per_channel(), per_channel(), per_channel()};
    const iabn::TensorRef tx{x, iabn::DType::f32, e.shape, iabn::Device::opencl};
    const iabn::TensorRef tdz{dz, iabn::DType::f32, e.shape, iabn::Device::opencl};
    for (int pass = 0; pass < 3; pass++) {
        SCOPED_TRACE(pass == 0 ? "forward, batch statistics" : pass == 1 ? "forward, global statistics" : "backward");
        iabn::Options o;
        o.layout = e.layout;
        o.training = pass != 1;
        dev->set_queue(o, nullptr);
        DeviceProbe probe(/*dry_run=*/true);
        if (pass < 2) {
            ASSERT_NO_THROW(iabn::forward(tx, st, o));
        } else {
            ASSERT_NO_THROW(iabn::backward(tx, tdz, st, {}, o));
        }
        ASSERT_TRUE(probe.installed()) << "Halide's OpenCL calls do not go through the probe";
        int64_t applied = 0;
        for (const Launch& l : probe.launches()) {
            EXPECT_LE(l.blocks(0), kMaxBlocksX) << l.kernel;
            EXPECT_LE(l.blocks(1), kMaxBlocksYZ) << l.kernel;
            EXPECT_LE(l.blocks(2), kMaxBlocksYZ) << l.kernel;
            if (is_apply(l)) applied += static_cast<int64_t>(l.global[0] * l.global[1] * l.global[2]);
        }
        // Where the dense dim is a whole number of 128-bit vectors (4 f32) and the tensor is
        // under 2 GB, the apply runs on vectors: a work-item per 4 elements (a cl_mem is always
        // aligned).
        const int64_t dense = e.layout == iabn::Layout::nhwc || numel / (e.shape[0] * e.shape[1]) == 1
                                  ? C
                                  : numel / (e.shape[0] * e.shape[1]);
        const int64_t vector = dense % 4 == 0 && numel * 4 < (int64_t{1} << 31) ? 4 : 1;
        EXPECT_GE(applied, numel / vector) << "the apply's launches cover fewer work-items than elements";
        if (vector > 1) {
            EXPECT_LT(applied, numel) << "the apply did not run on vectors";
        }
    }
    dev->synchronize(nullptr);
    for (void* m : channel) dev->free(m);
    dev->free(x);
    dev->free(dz);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GridLimits,
    ::testing::Values(Extreme{"nhwc_16_8M_rows", {16, 1024, 1024, 64}, iabn::Layout::nhwc},
                      Extreme{"nchw_70000_batch_rows", {70000, 3, 5}, iabn::Layout::nchw},
                      Extreme{"nchw_100000_channels", {2, 100000, 3}, iabn::Layout::nchw},
                      Extreme{"rank2_3M_channels", {2, 3000000}, iabn::Layout::nchw},
                      Extreme{"nchw_2pow32_elements", {8, 4, int64_t{1} << 27}, iabn::Layout::nchw},
                      Extreme{"nhwc_2pow32_elements", {int64_t{1} << 26, 64}, iabn::Layout::nhwc}),
    [](const ::testing::TestParamInfo<Extreme>& i) { return i.param.name; });

// 70000 batch rows: the nchw apply runs in two launches of at most 65535 rows, for real.
TEST(GpuApplyLaunches, SeveralLaunchesComputeTheWholeTensor) {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Case c;
    c.device = iabn::Device::opencl;
    c.shape = {70000, 2, 3};
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.1;
    DeviceProbe probe;
    check_forward(c);
    check_backward(c);
    int applies = 0;
    for (const Launch& l : probe.launches()) applies += is_apply(l) ? 1 : 0;
    EXPECT_GE(applies, 4) << "forward and backward apply, two launches each";
}

// The device memory of one forward and backward (the queue's workspace, allocated here: the
// per-block partials and the per-channel scratch), bounded by C x blocks, where a block covers at
// least 256 elements of a channel (an earlier schedule kept 256 lanes for every channel, chunk and
// batch row: 268 MB for [32, 2048, 7, 7]).
class GpuScratch : public ::testing::TestWithParam<Extreme> {};

TEST_P(GpuScratch, AtMostOrderChannelsTimesBlocks) {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    const Extreme& e = GetParam();
    Case c;
    c.device = iabn::Device::opencl;
    c.layout = e.layout;
    c.shape = e.shape;
    c.act = iabn::Activation::elu;
    CaseBuffers b(c);
    const Inputs& in = b.in;
    Buffer &x = b.x, &dz = b.dz;
    ChannelBuffers& cb = b.cb;
    DeviceMirror on(c.device, nullptr);
    const iabn::Options o = c.options();
    const iabn::TensorRef tx = x.ref(), tdz = dz.ref();  // (the test's device copies, made first)
    const iabn::ChannelState st = cb.state();
    const iabn::ParamGrads grads = cb.grads();
    iabn::release_workspace(c.device, o);  // (so the calls below allocate the workspace)
    DeviceProbe probe;
    ASSERT_NO_THROW(iabn::forward(tx, st, o));
    ASSERT_NO_THROW(iabn::backward(tx, tdz, st, grads, o));
    const size_t blocks = static_cast<size_t>((in.per_channel + 255) / 256);
    const size_t limit = 64 * 1024 + 64 * static_cast<size_t>(in.channels) * blocks;
    EXPECT_LE(probe.allocated_bytes(), limit) << "tensor " << x.bytes() << " B";
    std::printf("%s: iabn and Halide allocated %zu B on the device (limit %zu B, tensor %zu B)\n", e.name.c_str(),
                probe.allocated_bytes(), limit, x.bytes());
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuScratch,
                         ::testing::Values(Extreme{"nchw_resnet_7x7", {32, 2048, 7, 7}, iabn::Layout::nchw},
                                           Extreme{"nchw_one_channel_4Mi", {4, 1, 1 << 20}, iabn::Layout::nchw},
                                           Extreme{"nhwc_three_channels", {1 << 18, 3}, iabn::Layout::nhwc},
                                           Extreme{"nhwc_resnet", {8, 28, 28, 256}, iabn::Layout::nhwc}),
                         [](const ::testing::TestParamInfo<Extreme>& i) { return i.param.name; });

// The structure of a steady-state call (after the first on its queue, which allocates the queue's
// workspace): a training forward or backward launches at most 3 kernels (block partials, the
// per-channel finish, the apply), an eval forward at most 2 (coefficients, apply); the halves of
// a synchronized pass at most 2 each (3 for backward_partials: block partials, then the
// parameter gradients and the row, two loops of different extents); none creates a buffer, none
// waits for the device. With Options::check_device_values (the default), the checks of device
// values read them on the host: one wait each (the backward's weight here).
struct StructureCase {
    std::string name;
    std::vector<int64_t> shape;
    iabn::Layout layout;
    iabn::DType dtype;
    bool resident = false;  // a shape of the resident variant: training passes in 2 kernels
    // nchw rows a whole number of 128-bit vectors: the training passes' block partials load
    // vectors (runtime/plan.h, gpu_apply_vector(); kernels.h, gpu_partials_for()).
    bool vector_partials = false;
};

// On OpenCL (PoCL here) and on CUDA where a GPU is.
class GpuStructure : public ::testing::TestWithParam<std::tuple<iabn::Device, StructureCase>> {};

TEST_P(GpuStructure, SteadyStateCallsLaunchAtMostThreeKernelsCreateNoBufferAndDoNotWait) {
    const iabn::Device device = std::get<0>(GetParam());
    if (const std::string why = skip_reason(device); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    const StructureCase& sc = std::get<1>(GetParam());
    Case c;
    c.device = device;
    c.shape = sc.shape;
    c.layout = sc.layout;
    c.dtype = sc.dtype;
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.1;
    TestDevice* dev = test_device(c.device);
    c.queue = dev->create_queue();
    CaseBuffers b(c);
    // A synchronized pass of one process: its partials are the gathered rows.
    Buffer row(iabn::DType::f64, {1, iabn::sync_partials_size(b.in.channels)});
    row.poison();
    {
        DeviceMirror on(c.device, c.queue);
        const iabn::TensorRef tx = b.x.ref(), tdz = b.dz.ref(), trow = row.ref();
        const iabn::TensorRef partials{trow.data, trow.dtype, {trow.shape[1]}, trow.device};
        const iabn::ChannelState st = b.cb.state();
        const iabn::ParamGrads grads = b.cb.grads();
        iabn::Options train = c.options();
        train.check_device_values = false;
        iabn::Options eval = train;
        eval.training = false;
        const iabn::Options checked = c.options();  // check_device_values: the default
        struct Pass {
            const char* name;
            std::function<void()> call;
            size_t most_launches, waits;
        };
        const size_t training = sc.resident ? 2 : 3;
        const Pass passes[] = {
            {"training forward", [&] { iabn::forward(tx, st, train); }, training, 0},
            {"eval forward", [&] { iabn::forward(tx, st, eval); }, 2, 0},
            {"training backward", [&] { iabn::backward(tx, tdz, st, grads, train); }, training, 0},
            {"eval backward", [&] { iabn::backward(tx, tdz, st, grads, eval); }, training, 0},
            {"training backward, device values checked", [&] { iabn::backward(tx, tdz, st, grads, checked); }, training, 1},
            // Synchronized: block partials and the row; merge and apply (each a kernel).
            {"forward_partials", [&] { iabn::forward_partials(tx, partials, train); }, 2, 0},
            {"forward_finish", [&] { iabn::forward_finish(tx, st, trow, train); }, 2, 0},
            {"backward_partials", [&] { iabn::backward_partials(tx, tdz, st, grads, partials, train); }, 3, 0},
            {"backward_finish", [&] { iabn::backward_finish(tx, tdz, st, trow, train); }, 2, 0},
        };
        for (const Pass& pass : passes) {
            SCOPED_TRACE(pass.name);
            ASSERT_NO_THROW(pass.call());  // the first call on the queue may allocate
            DeviceProbe probe;
            ASSERT_NO_THROW(pass.call());
            ASSERT_TRUE(probe.installed(device)) << "Halide's launches do not go through the probe";
            std::string kernels;
            for (const Launch& l : probe.launches()) kernels += " " + l.kernel;
            EXPECT_LE(probe.launches().size(), pass.most_launches) << "kernels:" << kernels;
            // (OpenCL: CUDA launches have no names here. Not where a run forces the resident
            // variant or the scalar kernels.)
            const bool partials = std::string(pass.name).find("training") == 0 && !getenv_is("IABN_GPU_RESIDENT", "1") &&
                                  !getenv_is("IABN_GPU_VECTOR", "0") && device == iabn::Device::opencl;
            if (partials) {
                const std::vector<Launch> launches = probe.launches();
                const bool vector = std::any_of(launches.begin(), launches.end(), is_vector_partials);
                EXPECT_EQ(vector, sc.vector_partials) << "block partials on vectors; kernels:" << kernels;
            }
            EXPECT_EQ(probe.buffers_created(), 0u) << probe.allocated_bytes() << " B";
            EXPECT_EQ(probe.waits(), pass.waits);
        }
        dev->synchronize(c.queue);
    }
    iabn::Options o = c.options();
    iabn::release_workspace(c.device, o);
    dev->destroy_queue(c.queue);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuStructure,
    ::testing::Combine(
        ::testing::Values(iabn::Device::opencl, iabn::Device::cuda),
        ::testing::Values(StructureCase{"nchw_f32", {4, 6, 9, 7}, iabn::Layout::nchw, iabn::DType::f32},
                          StructureCase{"nchw_f32_many_blocks", {8, 16, 28, 28}, iabn::Layout::nchw, iabn::DType::f32,
                                        false, true},
                          StructureCase{"nchw_bf16_vectors", {3, 5, 16, 24}, iabn::Layout::nchw, iabn::DType::bf16,
                                        false, true},
                          StructureCase{"nhwc_f32", {3, 5, 7, 40}, iabn::Layout::nhwc, iabn::DType::f32},
                          StructureCase{"rank2_f32", {600, 7}, iabn::Layout::nchw, iabn::DType::f32},
                          StructureCase{"nchw_f16", {2, 3, 33, 65}, iabn::Layout::nchw, iabn::DType::f16},
                          StructureCase{"nhwc_bf16", {2, 7, 11, 3}, iabn::Layout::nhwc, iabn::DType::bf16},
                          StructureCase{"nchw_f64", {2, 4, 5, 6}, iabn::Layout::nchw, iabn::DType::f64, false, true},
                          StructureCase{"nchw_f32_resident", {4, 256, 7, 7}, iabn::Layout::nchw, iabn::DType::f32, true},
                          StructureCase{"nchw_f16_resident", {2, 320, 14, 14}, iabn::Layout::nchw, iabn::DType::f16, true})),
    [](const ::testing::TestParamInfo<std::tuple<iabn::Device, StructureCase>>& i) {
        return std::string(std::get<0>(i.param) == iabn::Device::cuda ? "cuda_" : "opencl_") + std::get<1>(i.param).name;
    });

// A queue's workspace is kept from call to call until iabn::release_workspace; another queue has
// its own.
class GpuWorkspace : public ::testing::TestWithParam<iabn::Device> {
protected:
    // A small training case on the parameter's device.
    static Case small_case(iabn::Device device) {
        Case c;
        c.device = device;
        c.shape = {4, 6, 9, 7};
        return c;
    }
};

TEST_P(GpuWorkspace, KeptPerQueueUntilReleased) {
    const iabn::Device device = GetParam();
    if (const std::string why = skip_reason(device); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Case c = small_case(device);
    TestDevice* dev = test_device(c.device);
    void* queues[2] = {dev->create_queue(), dev->create_queue()};
    CaseBuffers b(c);
    {
        DeviceMirror on(c.device, queues[0]);
        const iabn::TensorRef tx = b.x.ref();
        const iabn::ChannelState st = b.cb.state();
        auto created = [&](void* queue) {
            c.queue = queue;
            DeviceProbe probe;
            iabn::forward(tx, st, c.options());
            dev->synchronize(queue);
            return probe.buffers_created();
        };
        iabn::release_workspace(c.device, c.options());  // (none yet: a no-op)
        EXPECT_GT(created(queues[0]), 0u) << "the first call on a queue";
        EXPECT_EQ(created(queues[0]), 0u) << "the next call on it";
        EXPECT_GT(created(queues[1]), 0u) << "the first call on another queue";
        EXPECT_EQ(created(queues[0]), 0u) << "the first queue's workspace after the other's";
        c.queue = queues[0];
        iabn::release_workspace(c.device, c.options());
        EXPECT_GT(created(queues[0]), 0u) << "after release_workspace";
        for (void* q : queues) {
            c.queue = q;
            iabn::release_workspace(c.device, c.options());
        }
    }
    for (void* q : queues) dev->destroy_queue(q);
}

// A workspace handed in through Options (CUDA): too small a one is refused and nothing is written;
// a big enough one is used, so even the first call on a stream allocates nothing. OpenCL takes
// none (refused, nothing written).
TEST_P(GpuWorkspace, HandedInThroughOptions) {
    const iabn::Device device = GetParam();
    if (const std::string why = skip_reason(device); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Case c = small_case(device);
    TestDevice* dev = test_device(c.device);
    c.queue = dev->create_queue();
    CaseBuffers b(c);
    const size_t need = iabn::workspace_bytes(iabn::TensorRef{nullptr, c.dtype, c.shape, c.device}, c.options());
    EXPECT_GT(need, 0u);
    void* memory = dev->alloc(need);
    const Bytes x0 = b.x.snapshot();
    {
        DeviceMirror on(c.device, c.queue);
        iabn::Options o = c.options();
        o.workspace = memory;
        o.workspace_size = device == iabn::Device::opencl ? need : need - 1;
        EXPECT_THROW(iabn::forward(b.x.ref(), b.cb.state(), o), iabn::InvalidArgument);
        on.download();
    }
    EXPECT_TRUE(b.x.same_bytes(x0)) << "x written by a refused call";
    if (device == iabn::Device::cuda) {
        DeviceMirror on(c.device, c.queue);
        const iabn::TensorRef tx = b.x.ref();
        const iabn::ChannelState st = b.cb.state();
        iabn::Options o = c.options();
        o.workspace = memory;
        o.workspace_size = need;
        iabn::release_workspace(c.device, o);  // (no kept workspace on this stream either)
        DeviceProbe probe;
        EXPECT_NO_THROW(iabn::forward(tx, st, o));
        EXPECT_EQ(probe.buffers_created(), 0u) << "with a workspace handed in";
        dev->synchronize(c.queue);
        on.download();
    }
    dev->free(memory);
    dev->destroy_queue(c.queue);
}

TEST(GpuWorkspaceBytes, RefusesShapesNoCallTakes) {
    iabn::Options o;
    EXPECT_THROW(iabn::workspace_bytes(iabn::TensorRef{nullptr, iabn::DType::f32, {5}, iabn::Device::cuda}, o),
                 iabn::InvalidArgument);
    EXPECT_THROW(iabn::workspace_bytes(iabn::TensorRef{nullptr, iabn::DType::f32, {2, 0, 3}, iabn::Device::cuda}, o),
                 iabn::InvalidArgument);
    EXPECT_GT(iabn::workspace_bytes(iabn::TensorRef{nullptr, iabn::DType::f32, {2, 3, 5}, iabn::Device::cuda}, o), 0u);
}

INSTANTIATE_TEST_SUITE_P(Devices, GpuWorkspace, ::testing::Values(iabn::Device::opencl, iabn::Device::cuda),
                         [](const ::testing::TestParamInfo<iabn::Device>& i) {
                             return std::string(i.param == iabn::Device::cuda ? "cuda" : "opencl");
                         });

// A training forward enqueues and returns: its queue is held back by an event the test releases
// only after the call has returned, or after 10 s (so a call that waits fails instead of
// hanging). Then the results are right.
TEST(GpuOrdering, ForwardEnqueuesAndReturnsWithoutWaiting) {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Case c;
    c.device = iabn::Device::opencl;
    c.shape = {4, 6, 9, 7};
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.2;
    TestDevice* dev = test_device(c.device);
    c.queue = dev->create_queue();
    const OpenClEvents& cl = opencl_events();
    void* context = nullptr;
    ASSERT_EQ(cl.get_command_queue_info(c.queue, 0x1090 /* CL_QUEUE_CONTEXT */, sizeof context, &context, nullptr), 0);
    Rng rng;
    const Inputs in = make_inputs(c, rng);
    const iabn::Options o = c.options();
    Buffer x(c.dtype, c.shape);
    x.set(in.x);
    ChannelBuffers cb = ChannelBuffers::filled(channel_dtype(c.dtype), in);
    const auto r = ref::forward(in.x, c.shape, in.weight, in.bias, in.running_mean, in.running_var, o);
    {  // Not held back: the first call compiles the queue context's OpenCL programs, which may
       // take seconds on a loaded machine under a sanitizer, and the 10 s below is not for that.
        Buffer warm(c.dtype, c.shape);
        warm.set(in.x);
        ChannelBuffers warm_cb = ChannelBuffers::filled(channel_dtype(c.dtype), in);
        DeviceMirror on(c.device, c.queue);
        iabn::forward(warm.ref(), warm_cb.state(), o);
        on.download();
    }
    {
        DeviceMirror on(c.device, c.queue);
        const iabn::TensorRef tx = x.ref();
        const iabn::ChannelState st = cb.state();  // (the copies are made before the queue is held)
        int error = 0;
        void* gate = cl.create_user_event(context, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(cl.enqueue_barrier_with_wait_list(c.queue, 1, &gate, nullptr), 0);
        const auto start = std::chrono::steady_clock::now();
        auto call = std::async(std::launch::async, [&] { iabn::forward(tx, st, o); });
        const bool returned = call.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        cl.set_user_event_status(gate, 0);  // CL_COMPLETE: the queue runs
        call.get();
        cl.release_event(gate);
        EXPECT_TRUE(returned) << "iabn::forward waited for its queue (" << seconds << " s)";
        on.download();
    }
    EXPECT_LE(rel_err(x.get(), r.z), tolerance(c.dtype)) << "z";
    EXPECT_LE(rel_err(cb.running_mean.get(), r.running_mean), tolerance(c.dtype)) << "running_mean";
    dev->destroy_queue(c.queue);
}

// Another user of Halide's OpenCL runtime in this process (no iabn call: its user_context is not
// one of iabn's) gets Halide's default behaviour from iabn's context hooks, before and after iabn
// calls, and iabn's calls still run on their caller's queue.
TEST(GpuOtherHalideUsers, DeviceRoundTripBeforeAndAfterIabnCalls) {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    auto round_trip = [] {
        float host[64];
        for (int i = 0; i < 64; i++) host[i] = static_cast<float>(i) * 0.5f;
        halide_dimension_t dim = {0, 64, 1, 0};
        halide_buffer_t buf = {};
        buf.host = reinterpret_cast<uint8_t*>(host);
        buf.type = halide_type_t(halide_type_float, 32);
        buf.dimensions = 1;
        buf.dim = &dim;
        buf.flags = halide_buffer_flag_host_dirty;
        if (halide_copy_to_device(nullptr, &buf, halide_opencl_device_interface()) != 0) return false;
        for (float& v : host) v = -1.0f;
        buf.flags = halide_buffer_flag_device_dirty;
        if (halide_copy_to_host(nullptr, &buf) != 0) return false;
        halide_device_free(nullptr, &buf);
        for (int i = 0; i < 64; i++) {
            if (host[i] != static_cast<float>(i) * 0.5f) return false;
        }
        return true;
    };
    EXPECT_TRUE(round_trip()) << "before any iabn call in this test";
    Case c;
    c.device = iabn::Device::opencl;
    c.shape = {3, 5, 11};
    c.act = iabn::Activation::elu;
    check_forward(c);
    EXPECT_TRUE(round_trip()) << "after an iabn forward";
    check_backward(c);
    EXPECT_TRUE(round_trip()) << "after an iabn backward";
}

}  // namespace
}  // namespace iabn_test
