// Names of the public enums (from their lists in include/iabn/vocabulary.h), and Paddle's
// activation strings.
#include "names.h"

#include "iabn/iabn.h"

namespace iabn {

namespace detail {

std::string activation_names() {
    std::string out;
    for (int i = 0; i < kActivationCount; ++i) {
        if (i > 0) out += i + 1 == kActivationCount ? " or " : ", ";
        out += to_string(kActivations[i]);
    }
    return out;
}

}  // namespace detail

using detail::activation_names;

Activation parse_activation(const std::string& name) {
    if (name.empty()) return Activation::identity;  // Paddle's "no activation"
    for (Activation a : kActivations) {
        if (name == to_string(a)) return a;
    }
    if (name == "relu") {
        throw InvalidArgument("activation: expected " + activation_names() +
                              ", got 'relu': relu is not invertible (use leaky_relu with a small positive slope)");
    }
    throw InvalidArgument("activation: expected " + activation_names() + ", got '" + name + "'");
}

#define IABN_CASE(name) \
    case Activation::name: return #name;
const char* to_string(Activation activation) {
    switch (activation) { IABN_ACTIVATION_LIST(IABN_CASE) }
    return "unknown";
}
#undef IABN_CASE

#define IABN_CASE(name) \
    case DType::name: return #name;
const char* to_string(DType dtype) {
    switch (dtype) { IABN_DTYPE_LIST(IABN_CASE) }
    return "unknown";
}
#undef IABN_CASE

#define IABN_CASE(name) \
    case Layout::name: return #name;
const char* to_string(Layout layout) {
    switch (layout) { IABN_LAYOUT_LIST(IABN_CASE) }
    return "unknown";
}
#undef IABN_CASE

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::f16:
        case DType::bf16: return 2;
        case DType::f32: return 4;
        case DType::f64: return 8;
    }
    throw InvalidArgument("dtype: unknown value " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace iabn
