#include "view.h"

#include "device.h"


namespace iabn::detail {

halide_type_t halide_type(DType dtype) {
    switch (dtype) {
        case DType::f16: return halide_type_t(halide_type_float, 16);
        case DType::bf16: return halide_type_t(halide_type_bfloat, 16);
        case DType::f32: return halide_type_t(halide_type_float, 32);
        case DType::f64: return halide_type_t(halide_type_float, 64);
    }
    throw InvalidArgument("dtype: unknown value");
}

namespace {
Halide::Runtime::Buffer<void> describe(void* data, DType dtype, int dims, const halide_dimension_t* shape,
                                       Call& call) {
    const DeviceBackend* device = device_backend(call.device());
    if (!device) return Halide::Runtime::Buffer<void>(halide_type(dtype), data, dims, shape);
    Halide::Runtime::Buffer<void> b(device->element_type(dtype), nullptr, dims, shape);
    const int status = b.device_wrap_native(device->interface(), reinterpret_cast<uint64_t>(data), call.user_context());
    if (status != 0) {
        throw Error(std::string(device->name()) + ": wrapping device memory failed (Halide status " +
                    std::to_string(status) + ")");
    }
    b.set_device_dirty(true);  // the values are on the device; there is no host copy
    return b;
}
}  // namespace

Halide::Runtime::Buffer<void> tensor_buffer(const TensorRef& t, const View& v, Call& call) {
    halide_dimension_t dims[3] = {
        {0, static_cast<int32_t>(v.s), static_cast<int32_t>(v.stride_s), 0},
        {0, static_cast<int32_t>(v.c), static_cast<int32_t>(v.stride_c), 0},
        {0, static_cast<int32_t>(v.n), static_cast<int32_t>(v.stride_n), 0},
    };
    return describe(t.data, t.dtype, 3, dims, call);
}

Halide::Runtime::Buffer<void> vector_buffer(const TensorRef& t, const View& v, int vector, Call& call) {
    const bool nchw = v.kernel_layout == Layout::nchw;
    const int32_t lanes = vector, dense = static_cast<int32_t>((nchw ? v.s : v.c) / vector);
    halide_dimension_t dims[4] = {
        {0, lanes, 1, 0},
        {0, dense, lanes, 0},
        {0, static_cast<int32_t>(nchw ? v.c : v.s), static_cast<int32_t>(nchw ? v.stride_c : v.stride_s), 0},
        {0, static_cast<int32_t>(v.n), static_cast<int32_t>(v.s * v.c), 0},  // (channels-last: extent 1)
    };
    return describe(t.data, t.dtype, 4, dims, call);
}

bool vector_aligned(std::initializer_list<const TensorRef*> tensors, Call& call) {
    const DeviceBackend* device = device_backend(call.device());
    if (!device || !device->pointers_are_addresses()) return true;
    for (const TensorRef* t : tensors) {
        if (reinterpret_cast<uintptr_t>(t->data) % 16 != 0) return false;
    }
    return true;
}

Halide::Runtime::Buffer<void> channel_buffer(void* data, DType dtype, int64_t channels, Call& call) {
    halide_dimension_t dim = {0, static_cast<int32_t>(channels), 1, 0};
    return describe(data, dtype, 1, &dim, call);
}

Halide::Runtime::Buffer<void> channel_buffer(const TensorRef& t, int64_t channels, Call& call) {
    return channel_buffer(t.data, t.dtype, channels, call);
}

Halide::Runtime::Buffer<void> sync_buffer(const TensorRef& t, int64_t width, int64_t rows, Call& call) {
    halide_dimension_t dims[2] = {
        {0, static_cast<int32_t>(width), 1, 0},
        {0, static_cast<int32_t>(rows), static_cast<int32_t>(width), 0},
    };
    return describe(t.data, t.dtype, rows == 0 ? 1 : 2, dims, call);
}

Halide::Runtime::Buffer<void> partials_buffer(void* data, const iabn_sched::GpuPartition& p, int64_t channels,
                                              Call& call) {
    const int32_t k = iabn_sched::gpu_block_values, c = static_cast<int32_t>(channels),
                  sb = static_cast<int32_t>(p.s_blocks);
    halide_dimension_t dims[4] = {
        {0, k, 1, 0},
        {0, c, k, 0},
        {0, sb, k * c, 0},
        {0, static_cast<int32_t>(p.n_blocks), k * c * sb, 0},
    };
    return describe(data, DType::f64, 4, dims, call);
}

}  // namespace iabn::detail
