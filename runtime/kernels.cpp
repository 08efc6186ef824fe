#include "kernels.h"

#include "halide_glue.h"
#include "plan.h"

#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <utility>

namespace iabn::detail {
namespace {

using Key = std::tuple<DType, Layout, Device>;

std::map<Key, Kernels> build_table() {
    std::map<Key, Kernels> table;
    // IABN_KERNEL(generator, dtype, layout): layout `any` serves both layouts.
#define IABN_LAYOUTS_nchw {Layout::nchw}
#define IABN_LAYOUTS_nhwc {Layout::nhwc}
#define IABN_LAYOUTS_any {Layout::nchw, Layout::nhwc}
#define IABN_ADD_KERNEL(gen, dt, lay, device, function)                 \
    for (Layout l : std::initializer_list<Layout> IABN_LAYOUTS_##lay) { \
        table[{DType::dt, l, Device::device}].gen = &function;         \
    }
#define IABN_KERNEL(gen, dt, lay) IABN_ADD_KERNEL(gen, dt, lay, cpu, iabn_##gen##_##dt##_##lay)
#define IABN_CUDA_KERNEL(gen, dt, lay) IABN_ADD_KERNEL(gen, dt, lay, cuda, iabn_##gen##_##dt##_##lay##_cuda)
#define IABN_OPENCL_KERNEL(gen, dt, lay) IABN_ADD_KERNEL(gen, dt, lay, opencl, iabn_##gen##_##dt##_##lay##_opencl)
#include "iabn_kernel_table.inc"  // generated
#undef IABN_KERNEL
#undef IABN_CUDA_KERNEL
#undef IABN_OPENCL_KERNEL
#undef IABN_ADD_KERNEL
    return table;
}

// Not const only for kernels_entry_for_tuning().
std::map<Key, Kernels>& table() {
    static std::map<Key, Kernels> t = build_table();
    return t;
}

bool complete(const Kernels& k) {
    const bool cpu = k.forward_stats && k.backward_reduce && k.forward_partials && k.backward_partials;
    const bool gpu = k.gpu_forward_partials && k.gpu_forward_finish && k.gpu_backward_partials &&
                     k.gpu_backward_finish && k.gpu_forward_row && k.gpu_backward_row;
    return (cpu || gpu) && k.forward_apply && k.backward_apply && k.global_coeffs && k.forward_merge &&
           k.backward_merge;
}

std::string built_dtypes(Device device) {
    std::string out;
    for (const auto& [key, k] : table()) {
        const auto& [dtype, layout, dev] = key;
        if (dev == device && layout == Layout::nchw && complete(k)) {
            out += (out.empty() ? "" : ", ") + std::string(to_string(dtype));
        }
    }
    return out.empty() ? "none" : out;
}

}  // namespace

const Kernels& kernels_for(DType dtype, Layout kernel_layout, Device device) {
    auto it = table().find({dtype, kernel_layout, device});
    if (it == table().end() || !complete(it->second)) {
        const std::string where = device == Device::cuda ? " CUDA" : device == Device::opencl ? " OpenCL" : "";
        throw InvalidArgument(std::string("dtype: expected a dtype this build has") + where + " kernels for (" +
                    built_dtypes(device) + "), got " + to_string(dtype) + " with " + to_string(kernel_layout) +
                    " layout");
    }
    return it->second;
}

Kernels& kernels_entry_for_tuning(DType dtype, Layout kernel_layout, Device device) {
    kernels_for(dtype, kernel_layout, device);  // this build has it
    return table().at({dtype, kernel_layout, device});
}

GpuPartials gpu_partials_for(const Kernels& k, const View& v, int vector) {
    if (vector > 1 && v.kernel_layout == Layout::nchw && k.gpu_forward_partials_vector &&
        k.gpu_backward_partials_vector) {
        return {k.gpu_forward_partials_vector, k.gpu_backward_partials_vector, vector};
    }
    const int lanes = v.kernel_layout == Layout::nhwc ? iabn_sched::gpu_channel_lanes(v.c) : 32;
    GpuPartials p{k.gpu_forward_partials, k.gpu_backward_partials};
    if (lanes == 4) p = {k.gpu_forward_partials_c4, k.gpu_backward_partials_c4};
    if (lanes == 8) p = {k.gpu_forward_partials_c8, k.gpu_backward_partials_c8};
    if (lanes == 16) p = {k.gpu_forward_partials_c16, k.gpu_backward_partials_c16};
    if (!p.forward || !p.backward) {
        throw Error("iabn: this build has no GPU block partials with " + std::to_string(lanes) + " channel lanes");
    }
    return p;
}

bool use_fused(const Kernels& k, int64_t channels) {
    // IABN_ONE_PASS=0 forces the two-pass kernels (tests and benchmarks compare the two).
    static const bool allowed = [] {
        const char* v = std::getenv("IABN_ONE_PASS");
        return !(v && std::string(v) == "0");
    }();
    return allowed && k.forward_fused && k.backward_fused && one_pass_suits(channels, kernel_threads());
}

}  // namespace iabn::detail
