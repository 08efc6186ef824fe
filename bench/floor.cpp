#include "floor.h"

namespace bench {

template <typename T>
void floor_scale(T* x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = x[i] * T(1.0001) + T(0.5);
}

template <typename T>
double floor_read(const T* x, size_t n) {
    // Accumulated in T: a wider accumulator would make the loop compute-bound on some machines.
    T sum = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) sum += x[i];
    return sum;
}

template <typename T>
void floor_combine(T* dz, const T* z, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dz[i] = dz[i] * T(1.0001) + z[i] * T(0.5);
}

template void floor_scale<float>(float*, size_t);
template void floor_scale<double>(double*, size_t);
template double floor_read<float>(const float*, size_t);
template double floor_read<double>(const double*, size_t);
template void floor_combine<float>(float*, const float*, size_t);
template void floor_combine<double>(double*, const double*, size_t);

}  // namespace bench
