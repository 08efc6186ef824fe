// iabn_fuzz_api: dtypes, shapes and views as the rules see them (harness.h).
#include "harness.h"

#include <sstream>

namespace iabn_fuzz {

size_t elem_bytes(DType t) {
    switch (static_cast<int>(t)) {
        case 0:
        case 1: return 2;
        case 2: return 4;
        default: return 8;
    }
}

std::string str(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}
std::string str(const std::vector<int64_t>& s) {
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < s.size(); i++) out << (i ? ", " : "") << s[i];
    out << "]";
    return out.str();
}
const char* dtype_name(DType t) {
    switch (static_cast<int>(t)) {
        case 0: return "f16";
        case 1: return "bf16";
        case 2: return "f32";
        case 3: return "f64";
        default: return "invalid-dtype";
    }
}

std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, DType t) {
    uint64_t n = elem_bytes(t);
    for (int64_t d : shape) {
        if (d <= 0) return std::nullopt;
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > uint64_t(INT64_MAX)) return std::nullopt;
    }
    return n;
}

int64_t numel(const std::vector<int64_t>& shape) {  // only for shapes whose byte size fits
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

int64_t channels_of(const std::vector<int64_t>& shape, Layout layout) {
    if (shape.empty()) return 1;
    if (shape.size() == 1) return shape[0];
    return layout == Layout::nhwc ? shape.back() : shape[1];
}

bool view_fits(const std::vector<int64_t>& s, Layout layout) {
    const int64_t n = numel(s);
    const int64_t spatial = n / (s[0] * s[1]);
    std::vector<int64_t> e;
    if (layout != Layout::nhwc && spatial > 1) {
        e = {spatial, s[1], s[0], 1, spatial, s[1] * spatial};
    } else {
        const int64_t c = layout == Layout::nhwc ? s.back() : s[1];
        e = {n / c, c, 1, c, 1, 0};
    }
    for (int64_t v : e) {
        if (v > INT32_MAX) return false;
    }
    return true;
}

}  // namespace iabn_fuzz
