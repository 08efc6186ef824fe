// Process-wide settings and facts: version, thread count, dispatched target, schedule numbers built in.
#include "call.h"
#include "halide_glue.h"
#include "kernels.h"

#include <HalideBuffer.h>

namespace iabn {

void set_num_threads(int n) {
    if (n < 1) throw InvalidArgument("iabn::set_num_threads: n: expected >= 1, got " + std::to_string(n));
    detail::init_halide_runtime();
    detail::set_kernel_threads(n);
}

std::string version() { return IABN_VERSION; }

std::string kernel_target() {
    detail::init_halide_runtime();
    unsigned char name[128] = {};
    halide_dimension_t dim = {0, static_cast<int32_t>(sizeof(name) - 1), 1, 0};
    Halide::Runtime::Buffer<uint8_t> buffer(name, 1, &dim);
    detail::Call call(Device::cpu);
    call.run("target_probe", [&](void* uc) { return iabn_target_probe(uc, buffer); });
    return reinterpret_cast<const char*>(name);
}

std::string schedule_info() {
    return
#include "iabn_schedule_info.inc"
        ;
}

}  // namespace iabn
