// The correctness suite on the GPU: the standard cases (forward and backward against the float64
// reference, in-place results, untouched inputs) with Device::cuda tensors, and a case on a
// non-default stream (test_determinism.cpp has the GPU's bit-identical reruns). Without CUDA
// kernels in the build or without a CUDA device, every test here skips and says why.
#include "case_runner.h"
#include "cuda_device.h"

namespace iabn_test {
namespace {

std::vector<Case> cuda_cases() {
    std::vector<Case> cases = standard_cases();
    for (Case& c : cases) c.device = iabn::Device::cuda;
    return cases;
}

class CudaCase : public ::testing::TestWithParam<Case> {};

TEST_P(CudaCase, ForwardMatchesReference) {
    if (const std::string why = device_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    check_forward(GetParam());
}

TEST_P(CudaCase, BackwardMatchesReference) {
    if (const std::string why = device_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    check_backward(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaCase, ::testing::ValuesIn(cuda_cases()), CaseName());

TEST(CudaStream, ForwardAndBackwardOnANonDefaultStream) {
    Case c;
    c.device = iabn::Device::cuda;
    c.shape = {4, 6, 9, 7};
    c.act = iabn::Activation::leaky_relu;
    c.param = 0.01;
    if (const std::string why = device_skip_reason(c); !why.empty()) GTEST_SKIP() << why;
    IABN_TRACE_SEED();
    CudaDevice* dev = CudaDevice::get();
    c.cuda_stream = dev->create_stream();
    check_forward(c);
    check_backward(c);
    dev->destroy_stream(c.cuda_stream);
}

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
