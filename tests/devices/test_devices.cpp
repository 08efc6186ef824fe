// The correctness suite on GPUs, CUDA and OpenCL: the standard cases (forward and backward against
// the float64 reference, in-place results, untouched inputs) with device tensors, a case on a
// queue of its own, and bad input that only a device call can have
// (kernels/test_determinism.cpp has the devices' bit-identical reruns). OpenCL runs wherever an OpenCL device is (PoCL on the CPU
// here); without kernels in the build or a device, every test of that device skips and says why.
#include "case_runner.h"
#include "cuda_driver.h"
#include "device_api.h"
#include "device_mirror.h"

#include <cmath>
#include <functional>

namespace iabn_test {
namespace {

// The standard cases (their dense dims are odd: the GPUs' scalar applies), and shapes whose dense
// dim is a whole number of 128-bit vectors in every dtype (the vector applies).
std::vector<Case> device_cases(iabn::Device device) {
    std::vector<Case> cases = standard_cases();
    for (iabn::DType dt : {iabn::DType::f32, iabn::DType::f64, iabn::DType::f16, iabn::DType::bf16}) {
        for (iabn::Layout lay : {iabn::Layout::nchw, iabn::Layout::nhwc}) {
            for (Stats stats : {Stats::batch, Stats::global_train}) {
                Case c;
                c.dtype = dt;
                c.layout = lay;
                c.shape = lay == iabn::Layout::nchw ? std::vector<int64_t>{3, 5, 4, 16} : std::vector<int64_t>{3, 4, 5, 16};
                c.act = stats == Stats::batch ? iabn::Activation::leaky_relu : iabn::Activation::elu;
                c.param = stats == Stats::batch ? 0.1 : 1.0;
                c.stats = stats;
                cases.push_back(c);
            }
        }
    }
    for (Case& c : cases) c.device = device;
    return cases;
}

class DeviceCase : public ::testing::TestWithParam<Case> {};

TEST_P(DeviceCase, ForwardMatchesReference) {
    if (const std::string why = device_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

TEST_P(DeviceCase, BackwardMatchesReference) {
    if (const std::string why = device_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cuda, DeviceCase, ::testing::ValuesIn(device_cases(iabn::Device::cuda)), CaseName());
INSTANTIATE_TEST_SUITE_P(OpenCL, DeviceCase, ::testing::ValuesIn(device_cases(iabn::Device::opencl)), CaseName());

class DeviceQueue : public ::testing::TestWithParam<iabn::Device> {};

std::string device_param_name(const ::testing::TestParamInfo<iabn::Device>& i) {
    return i.param == iabn::Device::cuda ? "cuda" : "opencl";
}

// A stream (queue) of the caller's own, not the default one.
TEST_P(DeviceQueue, ForwardAndBackwardOnAQueueOfItsOwn) {
    Case c;
    c.device = GetParam();
    c.shape = {4, 6, 9, 7};
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.01;
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    TestDevice* dev = test_device(c.device);
    c.queue = dev->create_queue();
    check_forward(c);
    check_backward(c);
    dev->destroy_queue(c.queue);
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceQueue, ::testing::Values(iabn::Device::cuda, iabn::Device::opencl),
                         device_param_name);

// Device calls that must be refused before anything is written: no queue (OpenCL), a buffer
// on another device, memory the device's kernels cannot use (another context's, or none of the
// API's), the value checks that read device memory (a negative running variance with
// global statistics, a zero weight in backward), and overlapping device buffers.
class DeviceBadInput : public ::testing::TestWithParam<iabn::Device> {};

// The bad-input tests' values: normal draws, or scales and variances in [0.5, 2] (valid).
enum class Values { normal, scales };
void fill(Rng& rng, std::initializer_list<Buffer*> buffers, Values v) {
    for (Buffer* p : buffers) {
        for (int64_t i = 0; i < p->size(); i++) p->put(i, v == Values::normal ? rng.normal() : rng.uniform(0.5, 2.0));
    }
}

// Memory the device's kernels cannot use, and what releases it: CUDA, host memory CUDA does not
// know; OpenCL, a buffer of another context on the same device.
struct ForeignMemory {
    void* data = nullptr;
    std::function<void()> release = [] {};
};
ForeignMemory foreign_memory(iabn::Device device, TestDevice* dev) {
    if (device == iabn::Device::cuda) {
        static float host[64];
        return {host};
    }
    const iabn::detail::OpenClApi& api = iabn::detail::opencl_api();
    void* queue = dev->default_queue();
    void* cl_device = nullptr;
    EXPECT_EQ(api.get_command_queue_info(queue, 0x1091 /* CL_QUEUE_DEVICE */, sizeof cl_device, &cl_device, nullptr), 0);
    int error = 0;
    void* context = api.create_context(nullptr, 1, &cl_device, nullptr, nullptr, &error);
    EXPECT_EQ(error, 0);
    void* mem = api.create_buffer(context, 1 /* CL_MEM_READ_WRITE */, 256, nullptr, &error);
    EXPECT_EQ(error, 0);
    return {mem, [&api, mem, context] {
                api.release_mem_object(mem);
                api.release_context(context);
            }};
}

TEST_P(DeviceBadInput, RefusedAndNothingWritten) {
    Case c;
    c.device = GetParam();
    c.shape = {3, 4, 5};
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Rng rng;
    TestDevice* dev = test_device(c.device);
    const int64_t C = 4;
    Buffer x(iabn::DType::f32, c.shape), dz(iabn::DType::f32, c.shape), z(iabn::DType::f32, c.shape),
        w(iabn::DType::f32, {C}), b(iabn::DType::f32, {C}), rm(iabn::DType::f32, {C}), rv(iabn::DType::f32, {C}),
        sm(iabn::DType::f32, {C}), si(iabn::DType::f32, {C});
    fill(rng, {&x, &dz, &z, &b, &rm, &sm}, Values::normal);
    fill(rng, {&w, &rv, &si}, Values::scales);
    // Each case: values put in the host buffers before they are copied to the device, then
    // what is changed in the call's arguments.
    struct Bad {
        const char* name;
        std::function<void(Buffer& running_var, Buffer& weight)> values;
        std::function<void(iabn::Options&, iabn::ChannelState&)> arguments;
        bool backward;
        const char* expect;  // in the message
    };
    const auto none = [](auto&...) {};
    const ForeignMemory foreign = foreign_memory(c.device, dev);
    const std::vector<Bad> cases = {
        {"running_var on the host", none,
         [](iabn::Options&, iabn::ChannelState& s) { s.running_var.device = iabn::Device::cpu; }, false,
         "running_var.device"},
        {"negative running_var with global statistics", [](Buffer& v, Buffer&) { v.put(1, -1.0); },
         [](iabn::Options& o, iabn::ChannelState&) { o.training = false; }, false, "channel 1"},
        {"zero weight in backward", [](Buffer&, Buffer& wt) { wt.put(2, 0.0); }, none, true, "channel 2"},
        {"saved_mean is running_mean", none,
         [](iabn::Options&, iabn::ChannelState& s) { s.saved_mean.data = s.running_mean.data; }, false, "overlap"},
        {"running_mean in memory the device's kernels cannot use", none,
         [&](iabn::Options&, iabn::ChannelState& s) { s.running_mean.data = foreign.data; }, false,
         "running_mean: expected memory of the call's"},
    };
    for (const Bad& bad : cases) {
        SCOPED_TRACE(bad.name);
        Buffer rv_case = rv, w_case = w;
        bad.values(rv_case, w_case);
        const Bytes x0 = x.snapshot(), dz0 = dz.snapshot(), rm0 = rm.snapshot(), sm0 = sm.snapshot();
        {
            DeviceMirror on(c.device, nullptr);
            iabn::Options o;
            dev->set_queue(o, nullptr);
            iabn::ChannelState s{w_case.ref(), b.ref(), rm.ref(), rv_case.ref(), sm.ref(), si.ref()};
            bad.arguments(o, s);
            try {
                if (bad.backward) {
                    iabn::backward(z.ref(), dz.ref(), s, {}, o);
                } else {
                    iabn::forward(x.ref(), s, o);
                }
                ADD_FAILURE() << "no iabn::Error";
            } catch (const iabn::Error& e) {
                EXPECT_NE(std::string(e.what()).find(bad.expect), std::string::npos) << e.what();
            }
            on.download();
        }
        EXPECT_TRUE(x.same_bytes(x0)) << "x written";
        EXPECT_TRUE(dz.same_bytes(dz0)) << "dz written";
        EXPECT_TRUE(rm.same_bytes(rm0)) << "running_mean written";
        EXPECT_TRUE(sm.same_bytes(sm0)) << "saved_mean written";
    }
    foreign.release();
}

// Options::check_device_values = false skips the checks that read device values (no wait): a
// value they would refuse is not reported, and its channel's outputs are not finite.
TEST_P(DeviceBadInput, UncheckedDeviceValuesAreNotRefused) {
    Case c;
    c.device = GetParam();
    c.shape = {3, 4, 5};
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    Rng rng;
    const int64_t C = 4;
    Buffer z(iabn::DType::f32, c.shape), dz(iabn::DType::f32, c.shape), w(iabn::DType::f32, {C}),
        b(iabn::DType::f32, {C}), rm(iabn::DType::f32, {C}), rv(iabn::DType::f32, {C}), sm(iabn::DType::f32, {C}),
        si(iabn::DType::f32, {C}), wg(iabn::DType::f32, {C}), bg(iabn::DType::f32, {C});
    fill(rng, {&z, &dz, &b, &rm, &sm}, Values::normal);
    fill(rng, {&w, &rv, &si}, Values::scales);
    w.put(2, 0.0);
    wg.poison();
    bg.poison();
    {
        DeviceMirror on(c.device, nullptr);
        iabn::Options o;
        test_device(c.device)->set_queue(o, nullptr);
        o.check_device_values = false;
        iabn::ChannelState s{w.ref(), b.ref(), rm.ref(), rv.ref(), sm.ref(), si.ref()};
        EXPECT_NO_THROW(iabn::backward(z.ref(), dz.ref(), s, {wg.ref(), bg.ref()}, o));
        on.download();
    }
    EXPECT_FALSE(std::isfinite(wg.get()[2])) << "weight_grad of the zero-weight channel: " << wg.get()[2];
    EXPECT_TRUE(std::isfinite(wg.get()[1])) << "weight_grad of another channel: " << wg.get()[1];
}

// An OpenCL queue that may run commands out of order: refused (a call's kernels share its
// workspace one after another), nothing written.
TEST(OpenClOptions, OutOfOrderQueueIsAnErrorThatWritesNothing) {
    Case c;
    c.device = iabn::Device::opencl;
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    TestDevice* dev = test_device(c.device);
    void* in_order = dev->create_queue();
    const iabn::detail::OpenClApi& api = iabn::detail::opencl_api();
    void *context = nullptr, *device = nullptr;
    ASSERT_EQ(api.get_command_queue_info(in_order, 0x1090 /* CONTEXT */, sizeof context, &context, nullptr), 0);
    ASSERT_EQ(api.get_command_queue_info(in_order, 0x1091 /* DEVICE */, sizeof device, &device, nullptr), 0);
    int error = 0;
    void* any_order = api.create_command_queue(context, device, 1 /* OUT_OF_ORDER_EXEC_MODE_ENABLE */, &error);
    if (error != 0 || !any_order) {
        dev->destroy_queue(in_order);
        GTEST_SKIP() << "this OpenCL device has no out-of-order queues (clCreateCommandQueue: error " << error << ")";
    }
    Buffer x(iabn::DType::f32, {2, 3, 4}), rm(iabn::DType::f32, {3}), rv(iabn::DType::f32, {3}),
        sm(iabn::DType::f32, {3}), si(iabn::DType::f32, {3});
    x.set(std::vector<double>(24, 0.5));
    rv.set({1, 1, 1});
    const Bytes x0 = x.snapshot();
    {
        DeviceMirror on(c.device, in_order);
        iabn::Options o;
        o.opencl_queue = any_order;
        try {
            iabn::forward(x.ref(), {{}, {}, rm.ref(), rv.ref(), sm.ref(), si.ref()}, o);
            ADD_FAILURE() << "no iabn::Error for an out-of-order queue";
        } catch (const iabn::Error& e) {
            EXPECT_NE(std::string(e.what()).find("in-order"), std::string::npos) << e.what();
        }
        on.download();
    }
    EXPECT_TRUE(x.same_bytes(x0)) << "x written";
    api.release_command_queue(any_order);
    dev->destroy_queue(in_order);
}

// An OpenCL call without a queue.
TEST(OpenClOptions, MissingQueueIsAnError) {
    Case c;
    c.device = iabn::Device::opencl;
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    Buffer x(iabn::DType::f32, {2, 3, 4}), rm(iabn::DType::f32, {3}), rv(iabn::DType::f32, {3}),
        sm(iabn::DType::f32, {3}), si(iabn::DType::f32, {3});
    rv.set({1, 1, 1});
    DeviceMirror on(c.device, nullptr);
    iabn::Options o;  // opencl_queue left nullptr
    try {
        iabn::forward(x.ref(), {{}, {}, rm.ref(), rv.ref(), sm.ref(), si.ref()}, o);
        ADD_FAILURE() << "no iabn::Error without a queue";
    } catch (const iabn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("opencl_queue"), std::string::npos) << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceBadInput, ::testing::Values(iabn::Device::cuda, iabn::Device::opencl),
                         device_param_name);

// A build with CUDA kernels on a machine without the driver: a Device::cuda call is an
// iabn::Error that says so, and writes nothing (the pointers are host memory here; iabn never
// touches them before it has the driver).
TEST(CudaWithoutDriver, DeviceCallIsAnErrorThatWritesNothing) {
    if (!iabn::has_cuda_kernels()) GTEST_SKIP() << "no CUDA kernels in this build (IABN_CUDA=OFF)";
    if (CudaDevice::get() != nullptr) GTEST_SKIP() << "this machine has a CUDA device";
    Buffer x(iabn::DType::f32, {2, 3, 4, 5}), rm(iabn::DType::f32, {3}), rv(iabn::DType::f32, {3}),
        sm(iabn::DType::f32, {3}), si(iabn::DType::f32, {3});
    x.poison();
    rm.poison();
    rv.poison();
    const Bytes before = x.snapshot();
    auto on_device = [](Buffer& b) { return b.ref_on(iabn::Device::cuda, b.data()); };
    iabn::ChannelState st;
    st.running_mean = on_device(rm);
    st.running_var = on_device(rv);
    st.saved_mean = on_device(sm);
    st.saved_invstd = on_device(si);
    try {
        iabn::forward(on_device(x), st, iabn::Options());
        ADD_FAILURE() << "no iabn::Error without a CUDA driver";
    } catch (const iabn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(x.same_bytes(before));
}

}  // namespace
}  // namespace iabn_test
