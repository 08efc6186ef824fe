#include "passes.h"

#include "plan.h"  // runtime/plan.h: the runtime's pass choice

#include <algorithm>

namespace iabn_tune {

std::vector<Pass> make_passes(const Options& o) {
    std::vector<Pass> passes;
    auto add = [&](const std::string& id, const std::string& title, const std::string& layout,
                   std::vector<std::string> gens, size_t shape) {
        for (Pass& p : passes) {
            if (p.id == id) {
                p.shapes.push_back(shape);
                return;
            }
        }
        passes.push_back({id, title, layout, std::move(gens), {shape}});
    };
    // Two sweeps so that forward passes come before backward ones in each group.
    for (size_t i = 0; i < o.shapes.size(); i++) {
        const Shape& s = o.shapes[i];
        // As the runtime picks (runtime/plan.h): CPUs have one-pass kernels for nchw views.
        const bool one_pass = s.view_layout == "nchw" && iabn::detail::one_pass_suits(s.c, o.threads);
        const std::string l = s.view_layout;
        if (one_pass) {
            add("fwd-1p-nchw", "forward, one pass, nchw", l, {"forward_fused"}, i);
            add("bwd-1p-nchw", "backward, one pass, nchw", l, {"backward_fused"}, i);
        } else {
            add("fwd-2p-" + l, "forward, two passes, " + l, l, {"forward_stats", "forward_apply"}, i);
            add("bwd-2p-" + l, "backward, two passes, " + l, l, {"backward_reduce", "backward_apply"}, i);
        }
    }
    std::stable_sort(passes.begin(), passes.end(), [](const Pass& a, const Pass& b) {
        auto rank = [](const Pass& p) {
            return (p.id.find("2p") != std::string::npos ? 2 : 0) + (p.id[0] == 'b' ? 1 : 0);
        };
        return rank(a) < rank(b);
    });
    if (!o.passes.empty()) {
        std::vector<Pass> kept;
        for (const Pass& p : passes) {
            if (o.passes.count(p.id)) kept.push_back(p);
        }
        passes = kept;
    }
    return passes;
}

const std::vector<std::pair<std::string, std::vector<int>>>& space() {
    static const std::vector<std::pair<std::string, std::vector<int>>> s = {
        // block: elements per task (one-pass and element-wise kernels), or of one row per task
        // (nchw reductions): up to 2^20, since a one-pass task may hold several whole channels.
        {"block", {1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576}},
        {"rows", {8, 16, 32, 64, 128, 256, 512, 1024}},
        {"vectors", {1, 2, 4}},
        {"tasks_per_thread", {2, 4, 8, 16}},
        {"channels", {1, 2, 4, 8, 16, 32, 64, 128}},
        {"unroll", {1, 2, 4, 8}},
        {"unroll_channels", {256, 512, 1024, 2048}},
    };
    return s;
}

}  // namespace iabn_tune
