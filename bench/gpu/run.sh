#!/usr/bin/env bash
# The GPU benchmark, on a machine with an NVIDIA GPU (H100/H200 or any sm_80+):
#   bash bench/gpu/run.sh [repeats]                      builds build-gpu/ (needs Halide), then runs
#   IABN_GPU_BIN=<dir> bash bench/gpu/run.sh [repeats]   runs the prebuilt binaries in <dir>: no build
# and, on the build machine (no GPU needed), to make such a <dir>:
#   bash bench/gpu/run.sh --prepare <dir>                builds iabn_tests and iabn-bench-gpu in build/
#                                                        with the CUDA kernels and copies them to <dir>
# A run
# 1. asks iabn-bench-gpu for the CUDA device, and stops with the reason where there is none,
# 2. runs the CUDA correctness suite on the GPU (it must pass: no figures from wrong kernels),
# 3. times PyTorch's batch_norm + leaky_relu_ on the same shapes, if PyTorch with CUDA is there,
# 4. runs iabn-bench-gpu, which times iabn against a device-to-device copy floor and prints one
#    table with PyTorch's times beside iabn's.
# The prepared binaries carry iabn, its kernels and GoogleTest (static); they need glibc,
# libstdc++ and libgcc on the GPU machine, and its CUDA driver (loaded at run time). Steps 3 and 4
# read bench/gpu/torch_bench.py from this source tree, so carry <dir> along with the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The CUDA cases of tests/test_devices.cpp, tests/test_sync.cpp, tests/test_determinism.cpp and
# tests/test_gpu_launches.cpp (the structure of a steady-state call: launches, allocations, waits).
cuda_filter='Cuda/DeviceCase.*:Cuda/Sync.*:Devices/DeviceQueue.*/cuda:Devices/DeviceBadInput.*/cuda:CudaWithoutDriver.*:*/Determinism.*/cuda_*:Shapes/GpuStructure.*/cuda_*:Devices/GpuWorkspace.*/cuda'

if [ "${1:-}" = "--prepare" ]; then
    dir="${2:?usage: bash bench/gpu/run.sh --prepare <dir>}"
    source tools/env.sh  # the pinned CMake and Halide (tools/deps.sh)
    if [ ! -f build/CMakeCache.txt ]; then
        cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    # Whatever else build/ was configured with, these two need the CUDA kernels and the benchmark.
    cmake -S . -B build -DIABN_CUDA=ON -DIABN_BUILD_BENCH=ON -DIABN_BUILD_TESTS=ON >/dev/null
    cmake --build build --target iabn_tests iabn-bench-gpu
    mkdir -p "$dir"
    cp build/tests/iabn_tests build/bench/gpu/iabn-bench-gpu "$dir"/
    # Only the C and C++ runtimes may be needed where the binaries go.
    allowed='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|libstdc\+\+\.so|libgcc_s\.so)'
    for f in "$dir"/iabn_tests "$dir"/iabn-bench-gpu; do
        extra=$(ldd "$f" | awk '{print $1}' | xargs -n1 basename | grep -Ev "$allowed" || true)
        if [ -n "$extra" ]; then
            echo "run.sh --prepare: $f needs libraries a GPU machine may not have: $extra" >&2
            exit 1
        fi
    done
    glibc=$(objdump -T "$dir"/iabn_tests "$dir"/iabn-bench-gpu | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    glibcxx=$(objdump -T "$dir"/iabn_tests "$dir"/iabn-bench-gpu | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
    {
        echo "built from: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
        cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' build/CMakeCache.txt | cut -d= -f2)
        echo "built on: $(date -u +%Y-%m-%d) $(uname -m), $("$cxx" --version | head -1)"
        echo "build type: $(grep -m1 '^CMAKE_BUILD_TYPE:' build/CMakeCache.txt | cut -d= -f2)"
        echo "CPU kernel targets: $(grep -m1 '^IABN_KERNEL_TARGETS:' build/CMakeCache.txt | cut -d= -f2)"
        echo "CUDA kernel target: $(grep -m1 '^IABN_CUDA_TARGET:' build/CMakeCache.txt | cut -d= -f2)"
        echo "needs: $glibc, $glibcxx (libstdc++), libgcc_s; the CUDA driver at run time"
    } > "$dir/BUILD-INFO"
    cat "$dir/BUILD-INFO"
    echo "prepared $dir ($(du -sh "$dir" | cut -f1)): run there with IABN_GPU_BIN=$dir bash bench/gpu/run.sh"
    exit 0
fi

repeats="${1:-20}"
if [ -n "${IABN_GPU_BIN:-}" ]; then
    tests="$IABN_GPU_BIN/iabn_tests"
    bench="$IABN_GPU_BIN/iabn-bench-gpu"
    for f in "$tests" "$bench"; do
        if [ ! -x "$f" ]; then
            echo "run.sh: $f is missing (IABN_GPU_BIN=$IABN_GPU_BIN; make it with bash bench/gpu/run.sh --prepare <dir>)" >&2
            exit 1
        fi
    done
    if [ -f "$IABN_GPU_BIN/BUILD-INFO" ]; then cat "$IABN_GPU_BIN/BUILD-INFO"; fi
    out="$IABN_GPU_BIN"
    [ -w "$out" ] || out=$(mktemp -d)
else
    tests=build-gpu/tests/iabn_tests
    bench=build-gpu/bench/gpu/iabn-bench-gpu
    if [ ! -x "$bench" ] || [ ! -x "$tests" ]; then
        source tools/env.sh
        cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DIABN_CUDA=ON >/dev/null
        cmake --build build-gpu --target iabn-bench-gpu iabn_tests
    fi
    out=build-gpu
fi

echo "== CUDA device"
if ! device=$("$bench" --device 2>&1); then
    echo "run.sh: cannot run the GPU benchmark here: $device" >&2
    exit 1
fi
echo "$device"
count=$("$tests" --gtest_filter="$cuda_filter" --gtest_list_tests | grep -c '^  ' || true)
if [ "$count" -eq 0 ]; then
    echo "run.sh: the filter of the CUDA suite matches no test of $tests: $cuda_filter" >&2
    exit 1
fi
echo "== CUDA correctness suite ($count tests)"
"$tests" --gtest_brief=1 --gtest_filter="$cuda_filter"
echo "== PyTorch"
torch_times="$out/torch-times.txt"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 bench/gpu/torch_bench.py "$repeats" | tee "$torch_times"
else
    echo "PyTorch with CUDA is not installed here: the table has no PyTorch column"
    : > "$torch_times"
fi
echo "== iabn"
"$bench" --repeats "$repeats" --torch "$torch_times"
