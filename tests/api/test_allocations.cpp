// No hidden memory: forward and backward allocate at most O(C x threads) bytes beyond the
// caller's buffers, whatever the number of elements per channel. Every allocation path is
// counted: Halide's (halide_malloc, through its custom-allocator hooks) and C++'s (operator new,
// replaced in this test binary; the runtime allocates nothing else).
#include "test_util.h"

#include <iabn/iabn.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

// The Halide runtime inside libiabn.a exports these (HalideRuntime.h is not installed with iabn).
extern "C" {
typedef void* (*halide_malloc_t)(void* user_context, size_t size);
typedef void (*halide_free_t)(void* user_context, void* ptr);
halide_malloc_t halide_set_custom_malloc(halide_malloc_t user_malloc);
halide_free_t halide_set_custom_free(halide_free_t user_free);
}

namespace {

std::atomic<bool> counting{false};
std::atomic<size_t> halide_bytes{0}, new_bytes{0};
halide_malloc_t default_halide_malloc = nullptr;

void* counting_halide_malloc(void* user_context, size_t size) {
    if (counting) halide_bytes += size;
    return default_halide_malloc(user_context, size);
}

}  // namespace

// GCC's -Wmismatched-new-delete cannot see that these replacements pair malloc with free.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t size) {
    if (counting) new_bytes += size;
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace iabn_test {
namespace {

struct AllocCase {
    std::vector<int64_t> shape;
    iabn::Layout layout;
    std::string name;
};

class Allocations : public ::testing::TestWithParam<AllocCase> {};

TEST_P(Allocations, AtMostOrderChannelsTimesThreads) {
    const AllocCase& a = GetParam();
    const int threads = 2;
    iabn::set_num_threads(threads);
    const int64_t channels = a.layout == iabn::Layout::nchw ? a.shape[1] : a.shape.back();
    Buffer x(iabn::DType::f32, a.shape), dz(iabn::DType::f32, a.shape);
    Rng rng;
    std::vector<double> values(static_cast<size_t>(numel(a.shape)));
    for (double& v : values) v = rng.normal();
    x.set(values);
    for (double& v : values) v = rng.normal();
    dz.set(values);
    iabn::InPlaceABN layer(channels);
    layer.options().layout = a.layout;
    layer.options().activation = iabn::Activation::leaky_relu;
    layer.options().activation_param = 0.1;

    // Warm-up: the thread pool and the dispatcher's first choice are one-time process costs.
    layer.forward(x.ref());
    layer.backward(x.ref(), dz.ref());

    default_halide_malloc = halide_set_custom_malloc(counting_halide_malloc);
    halide_bytes = 0;
    new_bytes = 0;
    counting = true;
    layer.forward(x.ref());
    layer.backward(x.ref(), dz.ref());
    counting = false;
    halide_set_custom_malloc(default_halide_malloc);

    // Per channel and thread: the reductions' partial sums (tasks_per_thread tasks of a vector of
    // f64 pairs, forward and backward) and the per-channel scratch; plus a constant.
    const size_t limit = 64 * 1024 + static_cast<size_t>(channels) * threads * 4096;
    const size_t tensor_bytes = static_cast<size_t>(numel(a.shape)) * sizeof(float);
    EXPECT_LE(halide_bytes + new_bytes, limit)
        << "halide_malloc " << halide_bytes << " B, operator new " << new_bytes << " B, tensor " << tensor_bytes << " B";
}

// An error raised on one of Halide's worker threads (here: halide_malloc failing inside the
// parallel channel loop of a one-pass kernel) becomes an iabn::Error of the call that ran the
// task. The error hook used to know a call only on the calling thread, and a worker's error went
// to Halide's default handler, which aborts the process.
std::atomic<bool> fail_worker_mallocs{false};
std::atomic<int> refused_on_workers{0};
std::thread::id calling_thread;

void* failing_worker_malloc(void* user_context, size_t size) {
    if (fail_worker_mallocs && std::this_thread::get_id() != calling_thread) {
        refused_on_workers++;
        return nullptr;
    }
    // On a loaded machine the calling thread can finish every task before a worker wakes. So
    // its tasks wait here (a second at most) until a worker has taken one of the others.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (fail_worker_mallocs && refused_on_workers == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    return default_halide_malloc(user_context, size);
}

TEST(KernelErrors, AllocationFailureOnAWorkerThreadIsAnError) {
    IABN_TRACE_SEED();
    const int threads = 4;  // more than the cores: workers surely run some of the tasks
    iabn::set_num_threads(threads);
    const std::vector<int64_t> shape{8, 1024, 8, 8};  // one-pass nchw: 1024 channels, 16+ tasks
    Buffer x(iabn::DType::f32, shape);
    Rng rng;
    std::vector<double> values(static_cast<size_t>(numel(shape)));
    for (double& v : values) v = rng.normal();
    iabn::InPlaceABN layer(shape[1]);

    default_halide_malloc = halide_set_custom_malloc(failing_worker_malloc);
    calling_thread = std::this_thread::get_id();
    refused_on_workers = 0;
    fail_worker_mallocs = true;
    int errors = 0;
    std::string message;
    for (int attempt = 0; attempt < 50 && refused_on_workers == 0; attempt++) {
        x.set(values);
        try {
            layer.forward(x.ref());
        } catch (const iabn::Error& e) {
            errors++;
            message = e.what();
        }
    }
    fail_worker_mallocs = false;
    halide_set_custom_malloc(default_halide_malloc);
    iabn::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

    ASSERT_GT(refused_on_workers.load(), 0) << "no task allocated on a worker thread: the test proves nothing";
    EXPECT_EQ(errors, 1) << "the call whose worker failed to allocate must throw";
    EXPECT_NE(message.find("forward_fused"), std::string::npos) << message;
    EXPECT_NE(message.find("emory"), std::string::npos) << "Halide's out-of-memory message: " << message;
    // Afterwards the layer works again.
    x.set(values);
    EXPECT_NO_THROW(layer.forward(x.ref()));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Allocations,
    ::testing::Values(AllocCase{{1, 1, 1 << 22}, iabn::Layout::nchw, "nchw_one_channel_4Mi"},
                      AllocCase{{256, 2, 8192}, iabn::Layout::nchw, "nchw_two_channels_large_batch"},
                      AllocCase{{32, 64, 56, 56}, iabn::Layout::nchw, "nchw_resnet"},
                      AllocCase{{1 << 20, 3}, iabn::Layout::nhwc, "nhwc_three_channels_1Mi"},
                      AllocCase{{32, 28, 28, 256}, iabn::Layout::nhwc, "nhwc_resnet"},
                      AllocCase{{4096, 1024}, iabn::Layout::nchw, "rank2"}),
    [](const ::testing::TestParamInfo<AllocCase>& info) { return info.param.name; });

}  // namespace
}  // namespace iabn_test
