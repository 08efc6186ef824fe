// The networks of iabn-bench --network: every batch-norm + activation layer of a training step,
// as the distinct tensor shapes and how many layers have each (a step runs each layer's forward
// once and its backward once).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct Layers {
    std::vector<int64_t> nchw;  // logical [N, C, H, W]
    int count;                  // layers of this shape in the network
};

struct Network {
    std::string name;         // what --network takes
    std::string description;  // printed above its totals
    std::vector<Layers> layers;
};

// resnet50, deeplabv3.
const std::vector<Network>& networks();

// The activation memory a training step keeps between its forward and its backward for these
// layers, in bytes, with elements of `element_bytes`: InPlace-ABN keeps one tensor per layer (its
// output z, written over its input), batch norm followed by an activation two (the batch norm's
// input, which its backward reads, and the activation's output, which the activation's backward
// reads and the next layer takes as input). Per-channel statistics (a few KB) are left out.
struct KeptMemory {
    double inplace_abn = 0, bn_activation = 0;
};
KeptMemory kept_memory(const Network& net, double element_bytes);

}  // namespace bench
