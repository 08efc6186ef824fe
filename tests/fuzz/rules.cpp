// iabn_fuzz_api: the model of the rules (harness.h, and fuzz_api.cpp's header comment): what a
// call must refuse, and what the rules leave open.
#include "harness.h"

#include <cmath>

namespace iabn_fuzz {

Verdict model(const Call& c, const unsigned char* arena, const std::vector<unsigned char>* heap, bool ignore) {
    Verdict v;
    const Setup& s = setup();
    auto rule = [&](bool refused, const std::string& id, const std::string& detail) {
        const bool ignored = ignore && s.ignored.count(id);
        if (refused && !ignored) {
            v.refuse.push_back(id + ": " + detail);
        } else {
            v.open.push_back(id + ": " + detail);
            v.ignored = v.ignored || (refused && ignored);
        }
    };
    auto refuse = [&](const std::string& id, const std::string& detail) { rule(true, id, detail); };
    const iabn::Options& o = c.o;
    const int act = static_cast<int>(o.activation), lay = static_cast<int>(o.layout);
    if (!valid_activation(o.activation)) refuse("enum", "activation " + std::to_string(act));
    if (lay < 0 || lay > 1) refuse("enum", "layout " + std::to_string(lay));
    // Every activation but identity takes activation_param (include/iabn/vocabulary.h).
    if (valid_activation(o.activation) && o.activation != Activation::identity &&
        !(std::isfinite(o.activation_param) && o.activation_param > 0)) {
        refuse("activation_param", str(o.activation_param));
    }
    const bool batch = c.batch();
    const DType cd = channel_dtype(c.x.ref.dtype);
    if (!(o.epsilon >= min_normal(cd) && o.epsilon <= max_finite(cd))) refuse("epsilon", str(o.epsilon));
    if (!(o.momentum >= 0 && o.momentum <= 1)) rule(!c.backward, "momentum", str(o.momentum));

    auto tensor = [&](const Buf& b, const char* name) {
        const iabn::TensorRef& t = b.ref;
        const int dev = static_cast<int>(t.device);
        if (dev != 0) refuse(dev == 1 || dev == 2 ? "device" : "enum", std::string(name) + " device " + std::to_string(dev));
        if (!t.data) refuse("null", name);
        const size_t rank = t.shape.size();
        const bool rank_ok = rank >= 2 && rank <= 5;
        if (!rank_ok) refuse("rank", std::string(name) + " " + str(t.shape));
        bool dims_ok = true;
        for (int64_t d : t.shape) dims_ok = dims_ok && d > 0;
        if (!dims_ok) refuse("dims", std::string(name) + " " + str(t.shape));
        if (!computable(t.dtype)) {
            refuse("enum", std::string(name) + " " + dtype_name(t.dtype));
        } else if (dims_ok && !b.bytes) {
            refuse("size", std::string(name) + " " + str(t.shape) + ": byte size beyond 2^63");
        } else if (dims_ok && rank_ok && !view_fits(t.shape, valid_layout(o.layout) ? o.layout : Layout::nchw)) {
            refuse("extent", std::string(name) + " " + str(t.shape) + ": a view extent or stride >= 2^31");
        }
        if (t.data && computable(t.dtype) && !b.aligned()) {
            refuse("alignment", std::string(name) + " at address % " + std::to_string(elem_bytes(t.dtype)) + " = " +
                                    std::to_string(b.addr() % elem_bytes(t.dtype)));
        }
    };
    tensor(c.x, c.x_name());
    if (c.backward) {
        tensor(c.dz, "dz");
        if (c.dz.ref.shape != c.x.ref.shape) refuse("mismatch", "dz shape " + str(c.dz.ref.shape));
        if (c.dz.ref.dtype != c.x.ref.dtype) refuse("mismatch", std::string("dz dtype ") + dtype_name(c.dz.ref.dtype));
    }
    const int64_t C = channels_of(c.x.ref.shape, o.layout);
    for (int i = 0; i < kChannelBuffers; i++) {
        const Buf& b = c.ch[i];
        const std::string name = kChName[i];
        if (!b.given()) {
            if (c.required(i)) refuse("null", name);
            continue;  // absent (data == nullptr): whatever its shape, dtype and device
        }
        const bool used = c.used(i);
        const int dev = static_cast<int>(b.ref.device);
        if (dev != 0) rule(used, dev == 1 || dev == 2 ? "device" : "enum", name + " device " + std::to_string(dev));
        if (b.ref.shape != std::vector<int64_t>{C}) rule(used, "channel_shape", name + " " + str(b.ref.shape));
        if (b.ref.dtype != cd) rule(used, valid_enum(b.ref.dtype) ? "channel_dtype" : "enum", name + " " + dtype_name(b.ref.dtype));
        if (valid_enum(b.ref.dtype) && !b.aligned()) rule(used, "alignment", name);
    }
    // M < 2 with batch statistics (for a shape the rules otherwise accept).
    if (batch && c.x.bytes && c.x.ref.shape.size() >= 2 && c.x.ref.shape.size() <= 5 && C > 0 && numel(c.x.ref.shape) / C < 2) {
        refuse("M<2", std::string(c.x_name()) + " " + str(c.x.ref.shape));
    }
    // Overlap: a written buffer and any other buffer of the call.
    struct Range {
        uintptr_t lo, hi;
        std::string name;
        bool written, used;
    };
    std::vector<Range> ranges;
    auto add = [&](const Buf& b, const std::string& name, bool written, bool used) {
        if (b.given() && b.bytes) ranges.push_back({b.addr(), b.addr() + static_cast<uintptr_t>(*b.bytes), name, written, used});
    };
    add(c.x, c.x_name(), !c.backward, true);
    if (c.backward) add(c.dz, "dz", true, true);
    for (int i = 0; i < kChannelBuffers; i++) add(c.ch[i], kChName[i], c.written(i), c.used(i));
    for (size_t a = 0; a < ranges.size(); a++) {
        for (size_t b = a + 1; b < ranges.size(); b++) {
            const Range &p = ranges[a], &q = ranges[b];
            if (!(p.written || q.written) || !(p.lo < q.hi && q.lo < p.hi)) continue;
            rule(p.used && q.used, "overlap", p.name + " and " + q.name);
        }
    }
    // Values the rules look at: running_var with global statistics, the scale in backward.
    auto channel_values = [&](int i) -> std::optional<std::vector<double>> {
        const Buf& b = c.ch[i];
        if (!readable(b) || b.ref.shape != std::vector<int64_t>{C} || b.ref.dtype != cd) return std::nullopt;
        return values(b, arena, heap ? heap[i].data() : nullptr);
    };
    if (!batch) {
        if (auto rv = channel_values(RV)) {
            for (size_t k = 0; k < rv->size(); k++) {
                if ((*rv)[k] < 0 || std::isnan((*rv)[k])) {
                    refuse("running_var", "channel " + std::to_string(k) + ": " + str((*rv)[k]) + " with global statistics");
                    break;
                }
            }
        }
    }
    if (c.backward) {
        if (auto w = channel_values(W)) {
            for (size_t k = 0; k < w->size(); k++) {
                const double g = o.abs_weight ? std::fabs((*w)[k]) + o.epsilon : (*w)[k];
                if (g == 0 || std::fabs(g) < min_normal(cd)) {
                    refuse("scale", "channel " + std::to_string(k) + ": effective scale " + str(g));
                    break;
                }
            }
        }
    }
    return v;
}

}  // namespace iabn_fuzz
