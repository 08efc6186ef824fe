#!/usr/bin/env bash
# The whole test suite: install what is missing, build everything, run ctest on the x86 build
# (with the suite again under ASan+UBSan and under TSan), the PyTorch and Paddle packages' pytest
# suites, then the same C++ suite on the aarch64 kernels, cross-built and run under qemu, then the
# fuzzer on the public API for two minutes (tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
source tools/env.sh
# -U: the default dtypes (CMakeLists.txt), all of which the suite tests, whatever build/ cached.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DIABN_SANITIZERS=ON -UIABN_DTYPES >/dev/null
cmake --build build
(cd build && ctest --output-on-failure -j2 "$@")
# The PyTorch package and its pytest suite (python/, tools/python.sh), then the Paddle package's
# (tools/paddle.sh: Paddle 3 in a venv of its own).
bash tools/python.sh
bash tools/paddle.sh
bash tools/cross-aarch64.sh "$@"
# The libFuzzer target on the public API, for a bounded time (tests/fuzz/README.md).
bash tools/fuzz.sh 120
