// Hooks into the Halide runtime, chained to whatever was installed before so that a program that
// also runs its own Halide pipelines keeps its behaviour:
//  * errors raised inside an iabn call, on any thread of Halide's pool, are captured in the
//    call's Call (call.h) and rethrown as iabn::Error by the thread that made the call;
//  * IABN_DISPATCH_LIMIT=<level> (avx2, sse41) caps the x86 multi-target dispatch (tests and benchmarks use
//    it to run the lower targets on a machine that has the higher ones).
#include "halide_glue.h"

#include "call.h"
#include "dispatch_levels.h"  // schedules/: the CPU dispatch levels

#include "iabn/iabn.h"

#include <HalideRuntime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>
#include <thread>

namespace iabn::detail {
namespace {

std::atomic<int> configured_threads{0};
halide_error_handler_t previous_error_handler = nullptr;
halide_can_use_target_features_t previous_can_use = nullptr;
uint64_t denied_features[2] = {0, 0};  // bit masks over halide_target_feature_t

void capture_error(void* user_context, const char* message) {
    if (Call* call = Call::find(user_context)) {
        call->add_error(message);
    } else if (previous_error_handler) {
        previous_error_handler(user_context, message);
    }
}

int can_use_target_features(int count, const uint64_t* features) {
    for (int i = 0; i < count && i < 2; i++) {
        if (features[i] & denied_features[i]) return 0;
    }
    return previous_can_use(count, features);
}

void deny(halide_target_feature_t f) { denied_features[f / 64] |= uint64_t{1} << (f % 64); }

// The Halide features each x86 dispatch level (dispatch_levels.def) adds to the level below it:
// IABN_DISPATCH_LIMIT=<level> denies those of every level above <level>.
const std::map<std::string, std::vector<halide_target_feature_t>>& features_added_by_level() {
    static const std::map<std::string, std::vector<halide_target_feature_t>> added = {
        {"avx512",
         {halide_target_feature_avx512, halide_target_feature_avx512_knl, halide_target_feature_avx512_skylake,
          halide_target_feature_avx512_cannonlake, halide_target_feature_avx512_sapphirerapids}},
        {"avx2", {halide_target_feature_avx, halide_target_feature_avx2, halide_target_feature_fma,
                  halide_target_feature_f16c}},
        {"sse41", {}},
    };
    return added;
}

void read_dispatch_limit() {
    const char* limit = std::getenv("IABN_DISPATCH_LIMIT");
    if (!limit || !*limit) return;
    const auto& added = features_added_by_level();
    if (!added.count(limit)) {
        std::string names;
        for (const iabn_sched::DispatchLevel& level : iabn_sched::kDispatchLevels) {
            if (added.count(level.name)) names += std::string(names.empty() ? "" : ", ") + level.name;
        }
        throw Error(std::string("IABN_DISPATCH_LIMIT: expected one of ") + names + ", got '" + limit + "'");
    }
    for (const iabn_sched::DispatchLevel& level : iabn_sched::kDispatchLevels) {
        if (level.name == std::string(limit)) break;
        auto it = added.find(level.name);
        if (it != added.end()) {
            for (halide_target_feature_t f : it->second) deny(f);
        }
    }
}

}  // namespace

void init_halide_runtime() {
    static std::once_flag once;
    std::call_once(once, [] {
        read_dispatch_limit();
        previous_error_handler = halide_set_error_handler(capture_error);
        previous_can_use = halide_set_custom_can_use_target_features(can_use_target_features);
    });
}

int kernel_threads() {
    if (int n = configured_threads.load()) return n;
    for (const char* name : {"HL_NUM_THREADS", "HL_NUMTHREADS"}) {  // what Halide's thread pool reads
        if (const char* v = std::getenv(name)) {
            if (int n = std::atoi(v); n > 0) return n;
        }
    }
    return std::max(1u, std::thread::hardware_concurrency());
}

void set_kernel_threads(int n) {
    halide_set_num_threads(n);
    configured_threads.store(n);
}

}  // namespace iabn::detail
