// iabn_fuzz_api: buffers and calls (harness.h): how a call is described in a finding, and the
// values of a buffer as doubles (16-bit ones through tests/support/half.h).
#include "harness.h"

#include <cstring>
#include <sstream>

namespace iabn_fuzz {

namespace {

std::string describe(const Buf& b, const char* name) {
    std::ostringstream out;
    out << name << "{";
    if (!b.given()) {
        out << "null";
    } else if (b.where == Where::arena) {
        out << "arena+" << b.offset;
    } else if (b.where == Where::guard) {
        out << "guard";
    } else {
        out << "heap";
    }
    out << " " << dtype_name(b.ref.dtype) << " " << str(b.ref.shape);
    if (b.ref.device != Device::cpu) out << " device " << static_cast<int>(b.ref.device);
    out << "}";
    return out.str();
}

}  // namespace

std::string describe(const Call& c) {
    std::ostringstream out;
    const iabn::Options& o = c.o;
    out << (c.backward ? "backward" : "forward") << " threads " << c.threads << " act "
        << static_cast<int>(o.activation) << "(" << o.activation_param << ") eps " << o.epsilon << " momentum "
        << o.momentum << " layout " << static_cast<int>(o.layout) << (o.training ? " training" : " eval")
        << (o.use_global_stats ? " use_global_stats" : "") << (o.unbiased_running_var ? " unbiased" : "")
        << (o.abs_weight ? " abs_weight" : "") << " " << describe(c.x, c.x_name());
    if (c.backward) out << " " << describe(c.dz, "dz");
    for (int i = 0; i < kChannelBuffers; i++) {
        if (c.ch[i].given() || !c.ch[i].ref.shape.empty()) out << " " << describe(c.ch[i], kChName[i]);
    }
    return out.str();
}

namespace {

// One element (16-bit ones through half.h: the bits as the library reads them).
double load(const unsigned char* p, DType t) {
    switch (t) {
        case DType::f64: {
            double d;
            std::memcpy(&d, p, 8);
            return d;
        }
        case DType::f32: {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        default: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return iabn_test::from_bits(half_format(t), h);
        }
    }
}

}  // namespace

void store(unsigned char* p, DType t, double v) {
    switch (t) {
        case DType::f64: std::memcpy(p, &v, 8); break;
        case DType::f32: {
            const float f = static_cast<float>(v);
            std::memcpy(p, &f, 4);
            break;
        }
        default: {
            const uint16_t h = iabn_test::to_bits(half_format(t), v);
            std::memcpy(p, &h, 2);
        }
    }
}

bool readable(const Buf& b) {
    return b.given() && (b.where == Where::arena || b.where == Where::heap) && computable(b.ref.dtype) &&
           b.aligned() && b.bytes;
}

std::vector<double> values(const Buf& b, const unsigned char* arena, const unsigned char* heap) {
    const unsigned char* p = b.where == Where::arena ? arena + b.offset
                             : heap                  ? heap
                                                     : static_cast<const unsigned char*>(b.ref.data);
    const int64_t n = numel(b.ref.shape);
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) v[static_cast<size_t>(i)] = load(p + elem_bytes(b.ref.dtype) * i, b.ref.dtype);
    return v;
}

}  // namespace iabn_fuzz
