#include "kernels.h"

#include <map>
#include <utility>

namespace iabn::detail {
namespace {

using Key = std::pair<DType, Layout>;

std::map<Key, Kernels> build_table() {
    std::map<Key, Kernels> table;
    // IABN_KERNEL(generator, dtype, layout): layout `any` serves both layouts.
#define IABN_LAYOUTS_nchw {Layout::nchw}
#define IABN_LAYOUTS_nhwc {Layout::nhwc}
#define IABN_LAYOUTS_any {Layout::nchw, Layout::nhwc}
#define IABN_KERNEL(gen, dt, lay)                                          \
    for (Layout l : std::initializer_list<Layout> IABN_LAYOUTS_##lay) {     \
        table[{DType::dt, l}].gen = &iabn_##gen##_##dt##_##lay;            \
    }
#include "iabn_kernel_table.inc"  // generated
#undef IABN_KERNEL
    return table;
}

const std::map<Key, Kernels>& table() {
    static const std::map<Key, Kernels> t = build_table();
    return t;
}

bool complete(const Kernels& k) {
    return k.forward_stats && k.forward_apply && k.backward_reduce && k.backward_apply && k.global_coeffs;
}

}  // namespace

const Kernels& kernels_for(DType dtype, Layout kernel_layout) {
    auto it = table().find({dtype, kernel_layout});
    if (it == table().end() || !complete(it->second)) {
        throw Error(std::string("dtype: this build of iabn has no ") + to_string(dtype) + " " +
                    to_string(kernel_layout) + " kernels (built: f32, f64)");
    }
    return it->second;
}

bool has_kernels(DType dtype) {
    return table().count({dtype, Layout::nchw}) && complete(table().at({dtype, Layout::nchw}));
}

}  // namespace iabn::detail
