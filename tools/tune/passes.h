// What iabn-tune tunes: the passes the runtime runs for the given shapes (runtime/plan.h picks
// one-pass or two-pass as the runtime does), and the values each tunable may take.
#pragma once

#include "options.h"

#include <string>
#include <utility>
#include <vector>

namespace iabn_tune {

struct Pass {
    std::string id;      // fwd-1p-nchw, ...
    std::string title;   // "forward, one pass, nchw"
    std::string layout;  // the kernels' (view) layout
    std::vector<std::string> generators;
    std::vector<size_t> shapes;  // indexes into Options::shapes
};

// The passes of o.shapes (only those of --passes, if given): forward ones first.
std::vector<Pass> make_passes(const Options& o);

// The search space of each tunable (schedules/cpu.h, struct CpuParams), in CpuParams' order.
const std::vector<std::pair<std::string, std::vector<int>>>& space();

}  // namespace iabn_tune
