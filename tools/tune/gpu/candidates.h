// The GPU tuner's candidates: the kernels tools/tune/gpu/CMakeLists.txt prebuilt, each a library
// GPU kernel with one other value of one tunable, and how one takes its kernel's place in the
// runtime's dispatch table (runtime/kernels.h, kernels_entry_for_tuning()).
#pragma once

#include "kernels.h"  // runtime/kernels.h

#include <iabn/iabn.h>

#include <string>
#include <vector>

namespace iabn_tune_gpu {

enum class Pass { forward, backward };  // the training pass whose time a tunable changes

// One tunable of one generator: what a line of the params file sets (e.g. forward_apply's
// threads), and the dispatch-table slots whose kernels it shapes (forward_apply and
// forward_apply_vector).
struct Tunable {
    std::string generator, name;
    std::vector<std::string> slots;
    Pass pass;
};

struct Candidate {
    std::string generator, slot;
    iabn::DType dtype;
    iabn::Layout layout;
    iabn::Device device;
    std::string name;  // the tunable
    int value;
    void (*install)(iabn::detail::Kernels&);  // points the slot at this kernel
};

const std::vector<Candidate>& candidates();

// The tunables that have candidates for (dtype, layout, device), in the order of the table.
std::vector<Tunable> tunables(iabn::DType dtype, iabn::Layout layout, iabn::Device device);

// The values of `t` whose candidates cover every slot of t, ascending.
std::vector<int> candidate_values(const Tunable& t, iabn::DType dtype, iabn::Layout layout, iabn::Device device);

// While alive, the dispatch table's entry of (dtype, layout, device) runs value `value` of `t`
// (its candidates in all of t's slots); the entry is restored on destruction. value < 0: the
// library's own kernels (nothing is swapped).
class Installed {
public:
    Installed(const Tunable& t, int value, iabn::DType dtype, iabn::Layout layout, iabn::Device device);
    ~Installed();
    Installed(const Installed&) = delete;
    Installed& operator=(const Installed&) = delete;

private:
    iabn::detail::Kernels& entry_;
    iabn::detail::Kernels saved_;
};

}  // namespace iabn_tune_gpu
