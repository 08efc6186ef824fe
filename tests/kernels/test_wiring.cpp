// runtime/plan.h's wiring() states how each CPU pipeline's buffers are bound where the binding is
// not plain (which Output overwrites the caller's tensor, which per-channel buffers update
// themselves, which Inputs are the previous pipeline's Outputs); the tuner binds its candidates
// by it, by name. This test holds it against the names, kinds, dimensions and types the generated
// kernels declare in their metadata, for f32 in both layouts (the other dtypes are instantiations
// of the same generators, with the same arguments).
#include "plan.h"

#include <HalideRuntime.h>  // halide_filter_metadata_t

#include "iabn_kernel_headers.h"  // generated: every kernel's header (its _metadata())

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace {

struct Argument {
    int kind = -1;
    int dimensions = 0;
    halide_type_t type{};
};

using Arguments = std::map<std::string, Argument>;

Arguments arguments_of(const halide_filter_metadata_t* m) {
    Arguments out;
    for (int i = 0; i < m->num_arguments; ++i) {
        const halide_filter_argument_t& a = m->arguments[i];
        out[a.name] = {a.kind, a.dimensions, a.type};
    }
    return out;
}

using Metadata = const halide_filter_metadata_t* (*)();

// The wired pipelines' kernels, by generator, for one dtype and layout (the one-pass ones: nchw).
struct Instance {
    std::string name;  // e.g. "f32 nchw"
    std::map<std::string, Metadata> kernels;
};

#define IABN_TWO_PASS(dt, lay)                                          \
    {"forward_stats", iabn_forward_stats_##dt##_##lay##_metadata},     \
        {"forward_apply", iabn_forward_apply_##dt##_##lay##_metadata}, \
        {"backward_reduce", iabn_backward_reduce_##dt##_##lay##_metadata}, \
        {"backward_apply", iabn_backward_apply_##dt##_##lay##_metadata}
#define IABN_ONE_PASS(dt)                                            \
    {"forward_fused", iabn_forward_fused_##dt##_nchw_metadata},      \
        {"backward_fused", iabn_backward_fused_##dt##_nchw_metadata}

std::vector<Instance> instances() {
    // f32 is always built (runtime/kernels.h takes its signatures from it).
    return {
        {"f32 nchw", {IABN_TWO_PASS(f32, nchw), IABN_ONE_PASS(f32)}},
        {"f32 nhwc", {IABN_TWO_PASS(f32, nhwc)}},
    };
}

bool same_shape(const Argument& a, const Argument& b) {
    return a.dimensions == b.dimensions && a.type.code == b.type.code && a.type.bits == b.type.bits &&
           a.type.lanes == b.type.lanes;
}

TEST(Wiring, MatchesTheGeneratedKernels) {
    for (const Instance& instance : instances()) {
        for (const auto& [generator, metadata] : instance.kernels) {
            SCOPED_TRACE(instance.name + " " + generator);
            const iabn::detail::Wiring w = iabn::detail::wiring(generator);
            const Arguments args = arguments_of(metadata());
            if (!w.writer.empty()) {
                ASSERT_TRUE(args.count(w.writer)) << "no argument " << w.writer;
                const Argument& writer = args.at(w.writer);
                EXPECT_EQ(writer.kind, halide_argument_kind_output_buffer) << w.writer;
                // Where the pipeline also reads the tensor it overwrites, it is bound twice: the
                // two must be alike.
                if (args.count(w.overwritten)) {
                    EXPECT_EQ(args.at(w.overwritten).kind, halide_argument_kind_input_buffer) << w.overwritten;
                    EXPECT_TRUE(same_shape(args.at(w.overwritten), writer)) << w.overwritten << " and " << w.writer;
                }
            }
            for (const std::string& u : w.updated) {
                ASSERT_TRUE(args.count(u)) << "no argument " << u;
                EXPECT_EQ(args.at(u).kind, halide_argument_kind_output_buffer) << u;
                EXPECT_EQ(args.at(u).dimensions, 1) << u;
            }
            if (w.from.empty()) continue;
            ASSERT_TRUE(instance.kernels.count(w.previous)) << "no pipeline " << w.previous;
            const Arguments previous = arguments_of(instance.kernels.at(w.previous)());
            for (const auto& [input, output] : w.from) {
                ASSERT_TRUE(args.count(input)) << "no argument " << input;
                ASSERT_TRUE(previous.count(output)) << w.previous << " has no argument " << output;
                EXPECT_EQ(args.at(input).kind, halide_argument_kind_input_buffer) << input;
                EXPECT_EQ(previous.at(output).kind, halide_argument_kind_output_buffer) << output;
                EXPECT_TRUE(same_shape(args.at(input), previous.at(output))) << input << " and " << output;
            }
        }
    }
}

// Every generator the wiring names is one of the kernels checked above (a renamed pipeline fails
// here rather than in the tuner).
TEST(Wiring, NamesOnlyBuiltPipelines) {
    for (const Instance& instance : instances()) {
        for (const auto& [generator, metadata] : instance.kernels) {
            const iabn::detail::Wiring w = iabn::detail::wiring(generator);
            if (!w.previous.empty()) EXPECT_TRUE(instance.kernels.count(w.previous)) << generator << ": " << w.previous;
        }
    }
    EXPECT_THROW(iabn::detail::wiring("no_such_pipeline"), std::invalid_argument);
}

}  // namespace
