// iabn_fuzz_api: reporting findings (harness.h): abort on the first, or (IABN_FUZZ_KEEP_GOING)
// report each kind once, write its input into IABN_FUZZ_FINDINGS_DIR, and sum up at exit.
#include "harness.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>

namespace iabn_fuzz {

const uint8_t* g_input = nullptr;
size_t g_input_size = 0;

namespace {

std::map<std::string, long> g_findings;  // kind -> count (keep-going mode)

}  // namespace

long g_calls = 0, g_refused = 0, g_compared = 0, g_compared16 = 0, g_unchecked = 0;

void summary() {
    if (!setup().keep_going) return;
    std::fprintf(stderr,
                 "iabn_fuzz: %ld calls, %ld refused, %ld compared with the reference (%ld on 16-bit tensors), %ld "
                 "outside the domain\n",
                 g_calls, g_refused, g_compared, g_compared16, g_unchecked);
    for (const auto& [kind, n] : g_findings) std::fprintf(stderr, "iabn_fuzz: finding %s: %ld\n", kind.c_str(), n);
}

void finding(const std::string& kind, const std::string& detail) {
    Setup& s = setup();
    if (kind.compare(0, s.only.size(), s.only) != 0) return;  // IABN_FUZZ_ONLY
    if (!s.keep_going) {
        std::fprintf(stderr, "iabn_fuzz: FINDING [%s] %s\n", kind.c_str(), detail.c_str());
        std::abort();
    }
    if (g_findings[kind]++ == 0 || s.report_all) {
        std::fprintf(stderr, "iabn_fuzz: FINDING [%s] %s\n", kind.c_str(), detail.c_str());
        if (!s.findings_dir.empty()) {
            std::string name;
            for (char ch : kind) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
            const std::string path = s.findings_dir + "/finding-" + name;
            if (FILE* f = std::fopen(path.c_str(), "wb")) {
                std::fwrite(g_input, 1, g_input_size, f);
                std::fclose(f);
            }
        }
    }
}

[[noreturn]] void harness_bug(const std::string& what) {
    std::fprintf(stderr, "iabn_fuzz: HARNESS BUG: %s\n", what.c_str());
    std::abort();
}

}  // namespace iabn_fuzz
