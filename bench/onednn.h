// oneDNN 2.6 batch normalization + leaky_relu, the way a framework runs BN + activation on a CPU
// without InPlace-ABN: batch_normalization (training, scale and shift) then an in-place eltwise
// leaky_relu forward; eltwise backward then batch_normalization backward (with the scale and
// shift gradients). iabn-bench times it on the same shapes, data and thread count as iabn.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

// The memory format oneDNN runs in: the plain layouts iabn also takes, and oneDNN's blocked
// nChw16c (nCdhw16c at rank 5), its fastest layout for batch normalization.
enum class DnnlFormat { nchw, nhwc, blocked16c };
const char* to_string(DnnlFormat f);

class DnnlBnLeakyRelu {
public:
    // dims: logical [N, C, spatial...] (rank 2 to 5, like iabn's nchw shape); slope: leaky_relu's.
    // Blocked needs rank >= 3 (rank 2 has no blocked BN format): throws std::invalid_argument.
    DnnlBnLeakyRelu(const std::vector<int64_t>& dims, DnnlFormat format, float slope);
    ~DnnlBnLeakyRelu();

    // Untimed: loads x and dz given in logical nchw order (N, C, spatial...) into this object's
    // own buffers, converting to the object's format, and restores the pristine copies before
    // each timed pass.
    void load(const float* x_nchw, const float* dz_nchw);
    void restore_forward();   // x back to the loaded values
    void restore_backward();  // dz back to the loaded values; needs one forward() run before

    void forward();   // timed: bn forward training + eltwise forward (in place on the BN output)
    void backward();  // timed: eltwise backward + bn backward (diff src, diff scale and shift)

    // Untimed checks, in logical nchw order: the activated output of the last forward(), the
    // input gradient of the last backward().
    std::vector<float> output_nchw() const;
    std::vector<float> grad_input_nchw() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bench
