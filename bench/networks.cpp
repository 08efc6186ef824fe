#include "networks.h"

#include <functional>
#include <numeric>

namespace bench {

const std::vector<Network>& networks() {
    static const std::vector<Network> all = {
        // torchvision's ResNet-50 at 224x224, batch 32: 53 BN layers (stem 1, then per bottleneck
        // block bn1, bn2, bn3 and a downsample's BN in each stage's first block), shapes in order of
        // first use.
        {"resnet50",
         "ResNet-50, batch 32, 224x224: 53 layers",
         {{{32, 64, 112, 112}, 1}, {{32, 64, 56, 56}, 6}, {{32, 256, 56, 56}, 4}, {{32, 128, 56, 56}, 1},
          {{32, 128, 28, 28}, 7}, {{32, 512, 28, 28}, 5}, {{32, 256, 28, 28}, 1}, {{32, 256, 14, 14}, 11},
          {{32, 1024, 14, 14}, 7}, {{32, 512, 14, 14}, 1}, {{32, 512, 7, 7}, 5}, {{32, 2048, 7, 7}, 4}}},
        // InPlace-ABN's own kind of use: segmentation with few, huge tensors. torchvision's
        // deeplabv3_resnet101 at 512x512, batch 4, output stride 8 (stages 3 and 4 dilated instead
        // of strided, so they stay at 64x64): the ResNet-101 backbone's 104 BN layers (stage 2's
        // first block strides in its 3x3 conv, so its bn1 is at 128x128), then the ASPP head's
        // four 64x64 branches, its image-pooling branch (1x1), its projection and the head's 3x3
        // conv: 111 layers.
        {"deeplabv3",
         "DeepLabV3 (ResNet-101, output stride 8), batch 4, 512x512: 111 layers",
         {{{4, 64, 256, 256}, 1}, {{4, 64, 128, 128}, 6}, {{4, 256, 128, 128}, 4}, {{4, 128, 128, 128}, 1},
          {{4, 128, 64, 64}, 7}, {{4, 512, 64, 64}, 11}, {{4, 256, 64, 64}, 52}, {{4, 1024, 64, 64}, 24},
          {{4, 2048, 64, 64}, 4}, {{4, 256, 1, 1}, 1}}},
    };
    return all;
}

KeptMemory kept_memory(const Network& net, double element_bytes) {
    KeptMemory m;
    for (const Layers& l : net.layers) {
        const double elements =
            double(std::accumulate(l.nchw.begin(), l.nchw.end(), int64_t{1}, std::multiplies<int64_t>()));
        m.inplace_abn += l.count * elements * element_bytes;
        m.bn_activation += 2 * l.count * elements * element_bytes;
    }
    return m;
}

}  // namespace bench
