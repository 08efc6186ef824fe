// The memory-bandwidth floor: streaming passes that move exactly the bytes a pass must move,
// vectorized and parallel (OpenMP, same thread count as iabn), as fast as the machine allows.
// They are the yardstick of iabn-bench (docs/DESIGN.md, "Performance model"). T: float or double.
#pragma once

#include <cstddef>

namespace bench {

// In place: x = x * s + t (reads and writes x: 2 passes).
template <typename T>
void floor_scale(T* x, size_t n);
// Read only: returns sum(x) (1 pass); the result is kept so the read cannot be optimized away.
template <typename T>
double floor_read(const T* x, size_t n);
// In place on dz, reading z: dz = dz * s + z * t (3 passes).
template <typename T>
void floor_combine(T* dz, const T* z, size_t n);

}  // namespace bench
