#!/usr/bin/env bash
# The GPU benchmark, one command on a machine with an NVIDIA GPU (H100/H200 or any sm_80+):
#   bash bench/gpu/run.sh [repeats]
# 1. builds iabn with the CUDA kernels into build-gpu/ (unless already built there),
# 2. runs the CUDA correctness suite on the GPU (it must pass: no figures from wrong kernels),
# 3. times PyTorch's batch_norm + leaky_relu_ on the same shapes, if PyTorch with CUDA is there,
# 4. runs iabn-bench-gpu, which times iabn against a device-to-device copy floor and prints one
#    table with PyTorch's times beside iabn's.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats="${1:-20}"
if [ ! -x build-gpu/bench/gpu/iabn-bench-gpu ] || [ ! -x build-gpu/tests/iabn_tests ]; then
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DIABN_CUDA=ON >/dev/null
    cmake --build build-gpu --target iabn-bench-gpu iabn_tests
fi
echo "== CUDA correctness suite"
./build-gpu/tests/iabn_tests --gtest_brief=1 --gtest_filter='Cuda*:*cuda*:CudaStream*'
echo "== PyTorch"
torch_times=build-gpu/torch-times.txt
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 bench/gpu/torch_bench.py "$repeats" | tee "$torch_times"
else
    echo "PyTorch with CUDA is not installed here: the table has no PyTorch column"
    : > "$torch_times"
fi
echo "== iabn"
./build-gpu/bench/gpu/iabn-bench-gpu --repeats "$repeats" --torch "$torch_times"
