// Facts about the machine that the benchmarks and the tuner report and size their cache flush by.
#pragma once

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <string>

#include <unistd.h>

namespace bench {

// The CPU's model name, as /proc/cpuinfo gives it.
inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown CPU";
}

// How much memory to rewrite between timed runs so that no tensor stays cached: twice the
// last-level cache, at least 64 MB. A fixed 64 MB was enough on a 32 MB L3; on a 260 MB L3 it left
// part of a 100 MB tensor cached, and a pass's time then depended on what ran before it (the same
// floor loop over the same bytes: 4.3 ms in one place, 3.1 ms in another).
inline size_t cache_flush_bytes() {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);  // 0 or -1 where the C library cannot tell
    return std::max(size_t{64} << 20, l3 > 0 ? 2 * static_cast<size_t>(l3) : 0);
}

}  // namespace bench
