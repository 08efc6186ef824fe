#include "floor.h"

namespace bench {

void floor_scale(float* x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 1.0001f + 0.5f;
}

double floor_read(const float* x, size_t n) {
    double sum = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) sum += x[i];
    return sum;
}

void floor_combine(float* dz, const float* z, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dz[i] = dz[i] * 1.0001f + z[i] * 0.5f;
}

}  // namespace bench
