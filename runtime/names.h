// Internal helpers over the public vocabularies (include/iabn/vocabulary.h).
#pragma once

#include <string>

namespace iabn::detail {

// "identity, leaky_relu or elu": every activation's name, for error messages.
std::string activation_names();

}  // namespace iabn::detail
