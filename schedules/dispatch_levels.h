// The CPU dispatch levels (dispatch_levels.def) and the rule that names a kernel target's level,
// without Halide: the generators, the tuner, the runtime and the tests share it, and
// cmake/IabnKernels.cmake applies the same rule (a test checks that the two agree).
#pragma once

#include <sstream>
#include <string>

namespace iabn_sched {

struct DispatchLevel {
    const char* name;    // as the params files, the tuner and IABN_DISPATCH_LIMIT name it
    const char* target;  // the Halide target of its kernels by default
};

inline constexpr DispatchLevel kDispatchLevels[] = {
#define IABN_DISPATCH_LEVEL(name, target) {#name, target},
#include "dispatch_levels.def"
#undef IABN_DISPATCH_LEVEL
};

// The level of a Halide target string: the first level whose name is one of its words; "" if none.
inline std::string dispatch_level_of(const std::string& target) {
    for (const DispatchLevel& level : kDispatchLevels) {
        std::stringstream words(target);
        for (std::string word; std::getline(words, word, '-');) {
            if (word == level.name) return level.name;
        }
    }
    return "";
}

}  // namespace iabn_sched
