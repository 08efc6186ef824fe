// Generator parameters every iabn pipeline shares: the element types, the layout and the tunable
// schedule numbers (named as in schedules/<arch>.params, which the build passes in).
#pragma once

#include "Halide.h"
#include "schedule.h"
#include "tensor_view.h"
#include "types.h"

namespace iabn_gen {

template <typename T>
class IabnGenerator : public Halide::Generator<T> {
public:
    Halide::GeneratorParam<std::string> dtype{"dtype", "f32"};    // f32, f64, f16, bf16
    Halide::GeneratorParam<std::string> layout{"layout", "nchw"};  // nchw or nhwc
    Halide::GeneratorParam<int> block{"block", 8192};
    Halide::GeneratorParam<int> rows{"rows", 64};
    Halide::GeneratorParam<int> vectors{"vectors", 1};
    Halide::GeneratorParam<int> tasks_per_thread{"tasks_per_thread", 8};
    Halide::GeneratorParam<int> channels{"channels", 4};
    Halide::GeneratorParam<int> unroll{"unroll", 4};
    Halide::GeneratorParam<int> unroll_channels{"unroll_channels", 1024};
    // The numbers per dispatch level, as the build passes them from the params file:
    // "<level>:<name>:<value>,.../<level>:...". The entry of this target's level
    // (iabn_sched::dispatch_level) overrides the single numbers above, which the tuner sets.
    Halide::GeneratorParam<std::string> levels{"levels", ""};

protected:
    ElementTypes types() const { return element_types(dtype, this->get_target()); }
    ViewLayout view() const { return view_layout(layout); }
    iabn_sched::CpuParams cpu_params() const {
        iabn_sched::CpuParams p;
        p.block = block;
        p.rows = rows;
        p.vectors = vectors;
        p.tasks_per_thread = tasks_per_thread;
        p.channels = channels;
        p.unroll = unroll;
        p.unroll_channels = unroll_channels;
        iabn_sched::apply_level_params(p, levels, iabn_sched::dispatch_level(this->get_target()));
        return p;
    }
    // Estimates for the autoschedulers (the manual schedules do not read them): a
    // [32, 256, 56, 56] tensor as the 3-D view of the layout, and its 256 channels.
    Halide::Region estimate_tensor() const {
        return view() == ViewLayout::nchw ? Halide::Region{{0, 3136}, {0, 256}, {0, 32}}
                                          : Halide::Region{{0, 32 * 56 * 56}, {0, 256}, {0, 1}};
    }
    static Halide::Region estimate_channels() { return {{0, 256}}; }

    // Every view dim starts at 0 (the runtime builds them that way); stating it lets Halide drop
    // the min terms from the index math.
    template <typename BufferParam>
    static void zero_mins(BufferParam& b) {
        for (int d = 0; d < b.dimensions(); d++) b.dim(d).set_min(0);
    }
};

}  // namespace iabn_gen
