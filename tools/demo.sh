#!/usr/bin/env bash
# The main job: install what is missing, generate the kernels, build the library, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
source tools/env.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target iabn_demo
./build/examples/iabn_demo "$@"
