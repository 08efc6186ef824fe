// oneDNN 2.6 batch normalization + leaky_relu, the way a framework runs BN + activation on a CPU
// without InPlace-ABN: batch_normalization (training, scale and shift) then an in-place eltwise
// leaky_relu forward; eltwise backward then batch_normalization backward (with the scale and
// shift gradients). iabn-bench times it on the same shapes, data and thread count as iabn, in
// f32 and in 16 bits where oneDNN has the primitives (2.6: bf16, not f16).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// The memory format oneDNN runs in: the plain layouts iabn also takes, and oneDNN's blocked
// nChw16c (nCdhw16c at rank 5), its fastest layout for batch normalization.
enum class DnnlFormat { nchw, nhwc, blocked16c };
// oneDNN's name of the format at a rank (2..5), e.g. "nchw", "ndhwc", "nChw16c"; rank 2 is "nc".
std::string to_string(DnnlFormat f, size_t rank);

// The tensors' data type; scale, shift, mean and variance are f32 whatever it is (as in iabn).
// oneDNN 2.6's CPU batch normalization has no f64.
enum class DnnlType { f32, f16, bf16 };
const char* to_string(DnnlType t);

// oneDNN cannot run this data type and format here: it found no implementation of one of the
// primitives (oneDNN 2.6 has no f16 batch normalization or eltwise on CPUs). The bench then
// reports n/a. what(): the primitive and oneDNN's message.
class DnnlUnsupported : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class DnnlBnLeakyRelu {
public:
    // dims: logical [N, C, spatial...] (rank 2 to 5, like iabn's nchw shape); slope: leaky_relu's.
    // Blocked needs rank >= 3 (rank 2 has no blocked BN format): throws std::invalid_argument.
    // Throws DnnlUnsupported when oneDNN has no implementation for `type` in `format` here.
    DnnlBnLeakyRelu(const std::vector<int64_t>& dims, DnnlFormat format, float slope,
                    DnnlType type = DnnlType::f32);
    ~DnnlBnLeakyRelu();

    // Untimed: loads x and dz given in logical nchw order (N, C, spatial...) into this object's
    // own buffers, converting to the object's format and data type (for 16 bits, give values that
    // 16 bits hold exactly: oneDNN then gets the same inputs as iabn), and restores the pristine
    // copies before each timed pass.
    void load(const float* x_nchw, const float* dz_nchw);
    void restore_forward();   // x back to the loaded values
    void restore_backward();  // dz back to the loaded values; needs one forward() run before

    void forward();   // timed: bn forward training + eltwise forward (in place on the BN output)
    void backward();  // timed: eltwise backward + bn backward (diff src, diff scale and shift)

    // Untimed checks, in logical nchw order: the activated output of the last forward(), the
    // input gradient of the last backward().
    std::vector<float> output_nchw() const;
    std::vector<float> grad_input_nchw() const;

    // The implementations oneDNN chose, e.g. "bn ncsp_bnorm:any, eltwise jit:avx512_core": the
    // bench prints them, since a reference implementation explains a slow column.
    std::string implementations() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bench
