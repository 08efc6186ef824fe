// Generator parameters every iabn pipeline shares: the element types, the layout and the tunable
// schedule numbers its schedule reads (named as in schedules/<arch>.params, which the build
// passes in), and the autoschedulers' estimates.
#pragma once

#include "Halide.h"
#include "schedule.h"
#include "tensor_view.h"
#include "tunables.h"
#include "types.h"

#include "iabn/iabn.h"  // iabn::Activation

#include <map>
#include <stdexcept>
#include <string>

namespace iabn_gen {

// Tunables, GpuTunables: the schedule numbers the generator's CPU and GPU schedules read
// (tunables.h). They sit in bases of the generator object, where Halide finds GeneratorParams
// (within the object's bytes).
template <typename T, typename Tunables = NoTunables, typename GpuTunables = NoGpuTunables>
class IabnGenerator : public Halide::Generator<T>, public Tunables, public GpuTunables {
public:
    Halide::GeneratorParam<std::string> dtype{"dtype", "f32"};    // f32, f64, f16, bf16
    Halide::GeneratorParam<std::string> layout{"layout", "nchw"};  // nchw or nhwc
    // The numbers per dispatch level, as the build passes them from the params file:
    // "<level>:<name>:<value>,.../<level>:...". The entry of this target's level
    // (iabn_sched::dispatch_level) overrides the Tunables' single numbers, which the tuner sets.
    Halide::GeneratorParam<std::string> levels{"levels", ""};

protected:
    ElementTypes types() const { return element_types(dtype, this->get_target()); }
    ViewLayout view() const { return view_layout(layout); }
    // The threads of a GPU training pass's blocks on s and on n, and its channels
    // (schedules/gpu_blocks.h); channels-last: `channel_lanes` channels a block.
    iabn_sched::GpuBlockLanes gpu_block_lanes(int channel_lanes = 32) const {
        return view() == ViewLayout::nchw ? iabn_sched::gpu_block_lanes_nchw
                                          : iabn_sched::gpu_block_lanes_nhwc(channel_lanes);
    }
    // The GPU numbers: the target's (gpu_params()), then the params file's (GpuTunables).
    iabn_sched::GpuParams gpu_params() const {
        iabn_sched::GpuParams p = iabn_sched::gpu_params(this->get_target());
        GpuTunables::read(p);
        return p;
    }
    iabn_sched::CpuParams cpu_params() const {
        iabn_sched::CpuParams p;
        Tunables::read(p);
        iabn_sched::apply_level_params(p, levels, iabn_sched::dispatch_level(this->get_target()), Tunables::names());
        return p;
    }
    // The autoschedulers' estimates, all here (the manual schedules do not read them): a
    // [32, 256, 56, 56] tensor as the 3-D view of the layout, its 256 channels, the partials of 4
    // processes, and the scalars of a training step with leaky_relu(0.01) on 8 threads.
    Halide::Region estimate_tensor() const {
        return view() == ViewLayout::nchw ? Halide::Region{{0, 3136}, {0, 256}, {0, 32}}
                                          : Halide::Region{{0, 32 * 56 * 56}, {0, 256}, {0, 1}};
    }
    static Halide::Region estimate_channels() { return {{0, 256}}; }
    // The f64 partials of a synchronized pass ([2C + 1]), or `processes` rows of them gathered.
    static Halide::Region estimate_partials(int processes = 0) {
        if (processes == 0) return {{0, 2 * 256 + 1}};
        return {{0, 2 * 256 + 1}, {0, processes}};
    }
    template <typename... Buffers>
    void estimate_tensors(Buffers&... b) const {
        (b.set_estimates(estimate_tensor()), ...);
    }
    template <typename... Buffers>
    static void estimate_channel_buffers(Buffers&... b) {
        (b.set_estimates(estimate_channels()), ...);
    }
    template <typename... Scalars>
    static void estimate_scalars(Scalars&... s) {
        (estimate_scalar(s), ...);
    }

private:
    static double scalar_estimate(const std::string& name) {
        static const std::map<std::string, double> values = {
            {"epsilon", 1e-5},       {"momentum", 0.9},   {"unbiased_running_var", 0},
            {"abs_weight", 0},       {"batch_stats", 1},  {"activation", static_cast<int>(iabn::Activation::leaky_relu)},
            {"activation_param", 0.01}, {"threads", 8}};
        const auto it = values.find(name);
        if (it == values.end()) throw std::invalid_argument("iabn generator: no estimate for the scalar Input " + name);
        return it->second;
    }
    // A scalar Input's name: the name of the variable it stands for in expressions (Halide 21
    // made GeneratorInput::name() protected).
    template <typename Scalar>
    static std::string input_name(const Halide::GeneratorInput<Scalar>& s) {
        return Halide::Expr(s).template as<Halide::Internal::Variable>()->name;
    }
    static void estimate_scalar(Halide::GeneratorInput<double>& s) { s.set_estimate(scalar_estimate(input_name(s))); }
    static void estimate_scalar(Halide::GeneratorInput<bool>& s) { s.set_estimate(scalar_estimate(input_name(s)) != 0); }
    static void estimate_scalar(Halide::GeneratorInput<int>& s) {
        s.set_estimate(static_cast<int>(scalar_estimate(input_name(s))));
    }

protected:
    // Every view dim starts at 0 (the runtime builds them that way); stating it lets Halide drop
    // the min terms from the index math.
    template <typename BufferParam>
    static void zero_mins(BufferParam& b) {
        for (int d = 0; d < b.dimensions(); d++) b.dim(d).set_min(0);
    }
};

}  // namespace iabn_gen
