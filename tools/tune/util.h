// Small helpers every part of iabn-tune uses: a clock, number formatting, Halide's error gist,
// comma lists.
#pragma once

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace iabn_tune {

// Seconds since the first call.
inline double now_s() {
    static const auto t0 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// The gist of a Halide error message, on one line.
inline std::string first_line(const std::string& s, size_t max = 160) {
    std::string line;
    std::stringstream ss(s);
    for (std::string l; std::getline(ss, l);) {
        if (l.find_first_not_of(" \t") != std::string::npos && l != "Error:") {
            line = l;
            break;
        }
    }
    // "Internal Error at /build/.../Halide.h:13494 triggered by user code at : Condition failed: ..."
    if (line.rfind("Internal Error", 0) == 0) {
        if (auto c = line.find("Condition failed"); c != std::string::npos)
            line = "Halide internal error: " + line.substr(c);
    }
    while (!line.empty() && (line.back() == ' ' || line.back() == ':')) line.pop_back();
    return line.size() > max ? line.substr(0, max) + "..." : line;
}

// The non-empty parts of `s` between separators.
inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, sep);) {
        if (!part.empty()) out.push_back(part);
    }
    return out;
}

}  // namespace iabn_tune
