#include "view.h"

#include "cuda.h"

#include <numeric>

namespace iabn::detail {

namespace {
halide_type_t halide_type(DType dtype) {
    switch (dtype) {
        case DType::f16: return halide_type_t(halide_type_float, 16);
        case DType::bf16: return halide_type_t(halide_type_bfloat, 16);
        case DType::f32: return halide_type_t(halide_type_float, 32);
        case DType::f64: return halide_type_t(halide_type_float, 64);
    }
    throw Error("dtype: unknown value");
}
}  // namespace

View make_view(const std::vector<int64_t>& shape, Layout layout) {
    const int64_t numel = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    const int64_t spatial = numel / (shape[0] * shape[1]);
    if (layout == Layout::nchw && spatial > 1) {
        const int64_t c = shape[1];
        return {Layout::nchw, spatial, c, shape[0], 1, spatial, c * spatial};
    }
    const int64_t c = layout == Layout::nchw ? shape[1] : shape.back();
    const int64_t m = numel / c;
    return {Layout::nhwc, m, c, 1, c, 1, 0};  // n has extent 1: its stride is never used
}

namespace {
Halide::Runtime::Buffer<void> describe(void* data, DType dtype, int dims, const halide_dimension_t* shape,
                                       Device device) {
    if (device == Device::cpu) return Halide::Runtime::Buffer<void>(halide_type(dtype), data, dims, shape);
    Halide::Runtime::Buffer<void> b(halide_type(dtype), nullptr, dims, shape);
    wrap_device_memory(b, data);
    return b;
}
}  // namespace

Halide::Runtime::Buffer<void> tensor_buffer(void* data, DType dtype, const View& v, Device device) {
    halide_dimension_t dims[3] = {
        {0, static_cast<int32_t>(v.s), static_cast<int32_t>(v.stride_s), 0},
        {0, static_cast<int32_t>(v.c), static_cast<int32_t>(v.stride_c), 0},
        {0, static_cast<int32_t>(v.n), static_cast<int32_t>(v.stride_n), 0},
    };
    return describe(data, dtype, 3, dims, device);
}

Halide::Runtime::Buffer<void> channel_buffer(void* data, DType dtype, int64_t channels, Device device) {
    halide_dimension_t dim = {0, static_cast<int32_t>(channels), 1, 0};
    return describe(data, dtype, 1, &dim, device);
}

}  // namespace iabn::detail
