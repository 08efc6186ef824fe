#include "candidates.h"

#include "iabn_tune_candidates.h"  // generated: the candidates' headers

#include <algorithm>
#include <stdexcept>

namespace iabn_tune_gpu {

using iabn::DType;
using iabn::Device;
using iabn::Layout;

const std::vector<Candidate>& candidates() {
    // IABN_TUNE_CANDIDATE(kernel, dtype, layout, device, generator, slot, tunable, value): the
    // assignment in `install` checks that the candidate has the slot's signature.
#define IABN_TUNE_CANDIDATE(kernel, dt, lay, dev, gen, slot, tunable, value)                  \
    Candidate{#gen,       #slot, DType::dt, Layout::lay, Device::dev, #tunable, value,         \
              [](iabn::detail::Kernels& k) { k.slot = &iabn_##kernel##_##dt##_##lay##_##dev; }},
    static const std::vector<Candidate> table = {
#include "iabn_tune_candidates.inc"  // generated
    };
#undef IABN_TUNE_CANDIDATE
    return table;
}

namespace {
bool matches(const Candidate& c, DType dtype, Layout layout, Device device) {
    return c.dtype == dtype && c.layout == layout && c.device == device;
}
}  // namespace

std::vector<Tunable> tunables(DType dtype, Layout layout, Device device) {
    std::vector<Tunable> out;
    for (const Candidate& c : candidates()) {
        if (!matches(c, dtype, layout, device)) continue;
        auto t = std::find_if(out.begin(), out.end(),
                              [&](const Tunable& t) { return t.generator == c.generator && t.name == c.name; });
        if (t == out.end()) {
            const Pass pass = c.generator.find("backward") != std::string::npos ? Pass::backward : Pass::forward;
            out.push_back({c.generator, c.name, {}, pass});
            t = out.end() - 1;
        }
        if (std::find(t->slots.begin(), t->slots.end(), c.slot) == t->slots.end()) t->slots.push_back(c.slot);
    }
    return out;
}

namespace {
const Candidate* find(const Tunable& t, const std::string& slot, int value, DType dtype, Layout layout,
                      Device device) {
    for (const Candidate& c : candidates()) {
        if (matches(c, dtype, layout, device) && c.generator == t.generator && c.name == t.name && c.slot == slot &&
            c.value == value)
            return &c;
    }
    return nullptr;
}
}  // namespace

std::vector<int> candidate_values(const Tunable& t, DType dtype, Layout layout, Device device) {
    std::vector<int> out;
    for (const Candidate& c : candidates()) {
        if (!matches(c, dtype, layout, device) || c.generator != t.generator || c.name != t.name) continue;
        const bool all = std::all_of(t.slots.begin(), t.slots.end(),
                                     [&](const std::string& s) { return find(t, s, c.value, dtype, layout, device); });
        if (all && std::find(out.begin(), out.end(), c.value) == out.end()) out.push_back(c.value);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Installed::Installed(const Tunable& t, int value, DType dtype, Layout layout, Device device)
    : entry_(iabn::detail::kernels_entry_for_tuning(dtype, layout, device)), saved_(entry_) {
    if (value < 0) return;
    for (const std::string& slot : t.slots) {
        const Candidate* c = find(t, slot, value, dtype, layout, device);
        if (!c) throw std::logic_error("no candidate " + t.name + "=" + std::to_string(value) + " for " + slot);
        c->install(entry_);
    }
}

Installed::~Installed() { entry_ = saved_; }

}  // namespace iabn_tune_gpu
