// Uses the installed iabn: one training step of an InPlaceABN layer on a small tensor, then checks
// properties that hold for any correct kernel: the output is normalized (identity activation,
// weight 1, bias 0), dx has zero mean per channel and bias_grad is the per-channel sum of dz.
#include <iabn/iabn.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const int64_t n = 4, c = 3, hw = 50;
    std::vector<float> x(static_cast<size_t>(n * c * hw));
    for (size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(std::sin(0.7 * i) * 3 + (i / hw) % c);

    iabn::InPlaceABN layer(c);
    iabn::TensorRef tx{x.data(), iabn::DType::f32, {n, c, hw}};
    layer.forward(tx);

    std::vector<float> dz(x.size());
    for (size_t i = 0; i < dz.size(); i++) dz[i] = static_cast<float>(std::cos(0.3 * i));
    const std::vector<float> dz_in = dz;
    iabn::TensorRef tdz{dz.data(), iabn::DType::f32, {n, c, hw}};
    layer.backward(tx, tdz);

    int failures = 0;
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0, dsum = 0, dz_sum = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t s = 0; s < hw; s++) {
                const size_t k = static_cast<size_t>((i * c + ch) * hw + s);
                sum += x[k];
                sq += double(x[k]) * x[k];
                dsum += dz[k];
                dz_sum += dz_in[k];
            }
        }
        const double m = double(n * hw), mean = sum / m, var = sq / m - mean * mean;
        std::printf("channel %lld: mean %.2e  var %.6f  mean(dx) %.2e  bias_grad %.1f\n", static_cast<long long>(ch), mean,
                    var, dsum / m, layer.bias_grad()[ch]);
        if (std::abs(mean) > 1e-5 || std::abs(var - 1) > 1e-3 || std::abs(dsum / m) > 1e-6 ||
            std::abs(layer.bias_grad()[ch] - dz_sum) > 1e-4 * m) {
            failures++;
        }
    }
    std::printf("iabn kernels: %s\n%s\n", iabn::kernel_target().c_str(), failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
