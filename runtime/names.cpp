// Names of the public enums, and Paddle's activation strings.
#include "iabn/iabn.h"

namespace iabn {

Activation parse_activation(const std::string& name) {
    if (name.empty() || name == "identity") return Activation::identity;
    if (name == "leaky_relu") return Activation::leaky_relu;
    if (name == "elu") return Activation::elu;
    if (name == "relu") {
        throw InvalidArgument("activation: expected identity, leaky_relu or elu, got 'relu': relu is not invertible "
                    "(use leaky_relu with a small positive slope)");
    }
    throw InvalidArgument("activation: expected identity, leaky_relu or elu, got '" + name + "'");
}

const char* to_string(Activation activation) {
    switch (activation) {
        case Activation::identity: return "identity";
        case Activation::leaky_relu: return "leaky_relu";
        case Activation::elu: return "elu";
    }
    return "unknown";
}

const char* to_string(DType dtype) {
    switch (dtype) {
        case DType::f16: return "f16";
        case DType::bf16: return "bf16";
        case DType::f32: return "f32";
        case DType::f64: return "f64";
    }
    return "unknown";
}

const char* to_string(Layout layout) {
    switch (layout) {
        case Layout::nchw: return "nchw";
        case Layout::nhwc: return "nhwc";
    }
    return "unknown";
}

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
