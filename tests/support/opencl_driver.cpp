// The first OpenCL device of the first platform that has one (PoCL on a machine without a GPU),
// with a context and an in-order queue of its own, as a TestDevice (device_driver.h).
#include "device_driver.h"

#include "device_api.h"  // the runtime's loader of the OpenCL ICD loader

#include <vector>

namespace iabn_test {
namespace {

using iabn::detail::opencl_api;
using iabn::detail::opencl_check;
using Handle = iabn::detail::OpenClApi::Handle;

constexpr uint32_t kDeviceName = 0x102B;            // CL_DEVICE_NAME
constexpr uint64_t kDeviceTypeAll = 0xFFFFFFFF;     // CL_DEVICE_TYPE_ALL
constexpr uint64_t kMemReadWrite = 1;               // CL_MEM_READ_WRITE
constexpr intptr_t kContextPlatform = 0x1084;       // CL_CONTEXT_PLATFORM

class OpenClDevice final : public TestDevice {
public:
    // Throws iabn::Error when there is no OpenCL library or device.
    OpenClDevice() {
        const auto& api = opencl_api();
        uint32_t count = 0;
        opencl_check(api.get_platform_ids(0, nullptr, &count), "clGetPlatformIDs");
        std::vector<Handle> platforms(count);
        if (count) opencl_check(api.get_platform_ids(count, platforms.data(), nullptr), "clGetPlatformIDs");
        for (Handle p : platforms) {
            uint32_t found = 0;
            if (api.get_device_ids(p, kDeviceTypeAll, 1, &device_, &found) == 0 && found) {
                const intptr_t properties[] = {kContextPlatform, reinterpret_cast<intptr_t>(p), 0};
                int error = 0;
                context_ = api.create_context(properties, 1, &device_, nullptr, nullptr, &error);
                opencl_check(error, "clCreateContext");
                queue_ = create_queue();
                return;
            }
        }
        throw iabn::Error("OpenCL: no platform has a device");
    }

    iabn::Device device() const override { return iabn::Device::opencl; }

    std::string name() override {
        char buf[256] = {0};
        opencl_check(opencl_api().get_device_info(device_, kDeviceName, sizeof buf - 1, buf, nullptr), "clGetDeviceInfo");
        return buf;
    }

    void* alloc(size_t bytes) override {
        int error = 0;
        void* mem = opencl_api().create_buffer(context_, kMemReadWrite, bytes == 0 ? 1 : bytes, nullptr, &error);
        opencl_check(error, "clCreateBuffer");
        return mem;
    }

    void free(void* memory) override { opencl_check(opencl_api().release_mem_object(memory), "clReleaseMemObject"); }

    void upload(void* memory, const void* host, size_t bytes) override {
        opencl_check(opencl_api().enqueue_write_buffer(queue_, memory, 1, 0, bytes, host, 0, nullptr, nullptr),
                     "clEnqueueWriteBuffer");
    }

    void download(void* host, const void* memory, size_t bytes) override {
        opencl_check(opencl_api().enqueue_read_buffer(queue_, const_cast<void*>(memory), 1, 0, bytes, host, 0, nullptr,
                                                      nullptr),
                     "clEnqueueReadBuffer");
    }

    void* create_queue() override {
        int error = 0;
        void* q = opencl_api().create_command_queue(context_, device_, 0, &error);
        opencl_check(error, "clCreateCommandQueue");
        return q;
    }

    void destroy_queue(void* queue) override {
        opencl_check(opencl_api().release_command_queue(queue), "clReleaseCommandQueue");
    }

    void* default_queue() override { return queue_; }
    void synchronize(void* queue) override { opencl_check(opencl_api().finish(queue ? queue : queue_), "clFinish"); }
    void set_queue(iabn::Options& options, void* queue) override { options.opencl_queue = queue ? queue : queue_; }

private:
    Handle device_ = nullptr, context_ = nullptr, queue_ = nullptr;
};

std::string& opencl_failure() {
    static std::string why;
    return why;
}

OpenClDevice* opencl_device() {
    static OpenClDevice* device = []() -> OpenClDevice* {
        if (!iabn::has_opencl_kernels()) {
            opencl_failure() = "no OpenCL kernels in this build (IABN_OPENCL=OFF)";
            return nullptr;
        }
        try {
            return new OpenClDevice();  // lives as long as the process (its context too)
        } catch (const iabn::Error& e) {
            opencl_failure() = std::string("no OpenCL device: ") + e.what();
            return nullptr;
        }
    }();
    return device;
}

}  // namespace

TestDevice* opencl_test_device() { return opencl_device(); }

const std::string& opencl_unavailable() {
    opencl_device();
    return opencl_failure();
}

}  // namespace iabn_test
