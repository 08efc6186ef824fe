// The multi-target dispatch: the suite runs once per x86 level (ctest sets IABN_DISPATCH_LIMIT),
// which proves the in-place kernels of every compiled target only if the cap really selects them.
// An aarch64 build has one target (arm-64-linux), which is what it must report.
#include "dispatch_levels.h"

#include <iabn/iabn.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>

namespace {

bool has_feature(const std::string& target, const std::string& feature) {
    const std::string t = "-" + target + "-";
    return t.find("-" + feature + "-") != std::string::npos;
}

TEST(Dispatch, TargetHonoursTheDispatchLimit) {
    const std::string target = iabn::kernel_target();
    const char* env = std::getenv("IABN_DISPATCH_LIMIT");
    const std::string limit = env ? env : "";
    SCOPED_TRACE("kernel_target() = " + target + ", IABN_DISPATCH_LIMIT = '" + limit + "'");
#if defined(__aarch64__)
    EXPECT_EQ(target, "arm-64-linux");
#elif defined(__x86_64__)
    ASSERT_EQ(target.rfind("x86-64-linux", 0), 0u);
    __builtin_cpu_init();
    const bool cpu_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512cd");
    const bool cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
    if (limit == "sse41") {
        EXPECT_FALSE(has_feature(target, "avx2"));
        EXPECT_FALSE(has_feature(target, "avx512"));
        EXPECT_TRUE(has_feature(target, "sse41"));
    } else if (limit == "avx2") {
        EXPECT_FALSE(has_feature(target, "avx512"));
        EXPECT_EQ(has_feature(target, "avx2"), cpu_avx2);
    } else {
        // No cap: the most specific target this CPU runs.
        EXPECT_EQ(has_feature(target, "avx512_skylake"), cpu_avx512);
        EXPECT_EQ(has_feature(target, "avx2"), cpu_avx2);
    }
#else
    GTEST_SKIP() << "no dispatch expectations for this architecture (" << target << ")";
#endif
}

}  // namespace

#ifdef IABN_CMAKE_DISPATCH_LEVELS
// The dispatch-level rule exists twice, in CMake (which params line a kernel target takes) and in
// C++ (which line the generator reads, the tuner, IABN_DISPATCH_LIMIT): both must name the same
// level for the build's kernel targets and for a few harder ones. IABN_CMAKE_DISPATCH_LEVELS is
// "<target>=<level>,...", CMake's answers (tests/CMakeLists.txt).
TEST(Dispatch, CMakeAndCxxNameTheSameLevels) {
    std::stringstream pairs(IABN_CMAKE_DISPATCH_LEVELS);
    int checked = 0;
    for (std::string pair; std::getline(pairs, pair, ',');) {
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        ASSERT_NE(eq, std::string::npos) << pair;
        EXPECT_EQ(iabn_sched::dispatch_level_of(pair.substr(0, eq)), pair.substr(eq + 1)) << pair;
        ++checked;
    }
    EXPECT_GE(checked, 4);
}
#endif
