// iabn_fuzz_api: the process-wide setup (harness.h): the arena between two PROT_NONE pages, the
// PROT_NONE guard, and what the environment asks (IABN_FUZZ_*: fuzz_api.cpp's header comment).
#include "harness.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace iabn_fuzz {

Setup& setup() {
    static Setup s;
    return s;
}

void init() {
    Setup& s = setup();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kArena + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* g = mmap(nullptr, kGuard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED || g == MAP_FAILED) {
        std::perror("iabn_fuzz: mmap");
        std::abort();
    }
    auto* base = static_cast<unsigned char*>(p);
    if (mprotect(base, page, PROT_NONE) != 0 || mprotect(base + page + kArena, page, PROT_NONE) != 0) {
        std::perror("iabn_fuzz: mprotect");
        std::abort();
    }
    s.arena = base + page;
    s.guard = static_cast<unsigned char*>(g);
    // Host pointers passed as Device::cuda are only safe where no driver exists: the call must
    // fail before it reaches one. With a driver, Device::cuda is not fuzzed.
    void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    s.cuda_allowed = driver == nullptr;
    if (driver) dlclose(driver);
    auto env = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
    s.keep_going = env("IABN_FUZZ_KEEP_GOING") == "1" || env("IABN_FUZZ_KEEP_GOING") == "all";
    s.report_all = env("IABN_FUZZ_KEEP_GOING") == "all";
    s.verbose = env("IABN_FUZZ_VERBOSE") == "1";
    s.findings_dir = env("IABN_FUZZ_FINDINGS_DIR");
    s.only = env("IABN_FUZZ_ONLY");
    for (auto [var, set] : {std::make_pair("IABN_FUZZ_IGNORE", &s.ignored), std::make_pair("IABN_FUZZ_SKIP", &s.skipped)}) {
        std::stringstream list(env(var));
        for (std::string rule; std::getline(list, rule, ',');) {
            if (!rule.empty()) set->insert(rule);
        }
    }
}

}  // namespace iabn_fuzz
