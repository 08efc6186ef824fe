#!/usr/bin/env bash
# The aarch64 build, tested under qemu: the host build's generators (build/) emit arm-64-linux
# kernels; the runtime, the demo and the GoogleTest suite are cross-compiled with Debian's
# g++-aarch64-linux-gnu into build-aarch64/; ctest runs every test through qemu-aarch64.
#   tools/cross-aarch64.sh [ctest arguments]
# Then: ./build-aarch64/examples/iabn_demo runs under qemu (binfmt) or as
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/examples/iabn_demo
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
source tools/env.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target iabn_generators
cmake -S . -B build-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Release -UIABN_DTYPES \
      -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
      -Diabn-halide_generators_ROOT="$PWD/build" >/dev/null
cmake --build build-aarch64
cd build-aarch64 && ctest --output-on-failure -j2 "$@"
