#include "call.h"

#include <unordered_set>

namespace iabn::detail {
namespace {

std::mutex registry_mutex;
std::unordered_set<const void*>& registry() {
    static std::unordered_set<const void*> calls;
    return calls;
}

}  // namespace

Call::Call(Device device) : device_(device) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry().insert(this);
}

Call::~Call() {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry().erase(this);
}

Call* Call::find(void* user_context) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    return registry().count(user_context) ? static_cast<Call*>(user_context) : nullptr;
}

void Call::add_error(const char* message) {
    std::lock_guard<std::mutex> lock(mutex_);
    errors_ += message;
}

void Call::clear_errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    errors_.clear();
}

void Call::fail(const char* kernel, int status) {
    std::string message;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        message = errors_;
    }
    throw Error(std::string("kernel ") + kernel + " failed (Halide status " + std::to_string(status) +
                "): " + (message.empty() ? "no message" : message));
}

}  // namespace iabn::detail
