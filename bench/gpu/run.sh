#!/usr/bin/env bash
# The GPU benchmark, on a machine with an NVIDIA GPU (H100/H200 or any sm_80+):
#   bash bench/gpu/run.sh [--quick] [repeats]                     builds build-gpu/ (needs Halide), then runs
#   IABN_GPU_BIN=<dir> bash bench/gpu/run.sh [--quick] [repeats]  runs the prebuilt binaries in <dir>: no build
# and, on the build machine (no GPU needed), to make such a <dir>:
#   bash bench/gpu/run.sh --prepare <dir>     builds iabn_tests and iabn-bench-gpu with the CUDA
#                                             kernels and one CPU dispatch level in build-gpu-prepare/
#                                             and copies them, stripped, to <dir>
#   bash bench/gpu/run.sh --prepare-tuner <dir>   the same for iabn-tune-gpu alone, with its CUDA
#                                             candidates (f32, f16, bf16; four values of each
#                                             tunable): docs/tuning.md. (Alone: with the
#                                             other two it would not fit in the 64 MiB a GPU session
#                                             carries.)
#   IABN_GPU_CPU_TARGET=<target>|build        another single CPU level, or build/ as it is
# The GPU tuner is not part of a run (docs/tuning.md: its own command, on the same <dir>).
# A run
# 1. asks iabn-bench-gpu for the CUDA device, and stops with the reason where there is none,
# 2. runs the CUDA correctness suite and the structure tests on the GPU (they must pass: no
#    figures from wrong kernels),
# 3. times PyTorch's batch_norm + leaky_relu_ (torch_bench.py) on iabn-bench-gpu's own shape list
#    (--list-shapes), with the first interpreter that has torch with CUDA: $IABN_GPU_PYTHON,
#    python3, Debian's /usr/bin/python3 (where python3-torch goes); none: PyTorch's columns say -,
# 4. runs iabn-bench-gpu, which times iabn against its two copy floors and prints the tables with
#    PyTorch's times beside iabn's (bench/README.md: what is measured and how).
# --quick: ResNet-50's five stage shapes only, 10 calls x 3 repeats, no network totals.
# repeats: timed runs per time, of which the median (default 7; 20 calls each).
# The results go to $IABN_GPU_OUT (default: IABN_GPU_BIN's directory, or build-gpu/; a temporary
# one where that is not writable): gpu-shapes.txt, torch-times.txt, iabn-bench-gpu.txt (the tables).
# How long a run takes, and why --budget-s: docs/gpu.md ("How long a GPU run takes").
set -euo pipefail
cd "$(dirname "$0")/../.."

# The CUDA cases of tests/devices/test_devices.cpp, tests/sync/test_sync.cpp,
# tests/kernels/test_determinism.cpp and tests/devices/test_gpu_launches.cpp (the structure of a steady-state call: launches, allocations, waits).
cuda_filter='Cuda/DeviceCase.*:Cuda/Sync.*:Devices/DeviceQueue.*/cuda:Devices/DeviceBadInput.*/cuda:CudaWithoutDriver.*:*/Determinism.*/cuda_*:Shapes/GpuStructure.*/cuda_*:Devices/GpuWorkspace.*/cuda'
budget_s=100
max_prepared_mib=64  # what a GPU session can carry over with the source tree

if [ "${1:-}" = "--prepare" ] || [ "${1:-}" = "--prepare-tuner" ]; then
    dir="${2:?usage: bash bench/gpu/run.sh --prepare|--prepare-tuner <dir>}"
    if [ "$1" = "--prepare" ]; then
        programs=(tests/iabn_tests bench/gpu/iabn-bench-gpu)
    else
        programs=(tools/tune/gpu/iabn-tune-gpu)
    fi
    source tools/env.sh  # the pinned CMake and Halide (tools/deps.sh)
    # The build tree: build-gpu-prepare/, with one CPU dispatch level (IABN_GPU_CPU_TARGET,
    # default x86-64-linux-avx2-fma-f16c-sse41, which H100 and H200 hosts run): the CPU kernels
    # are most of a binary (three levels: some 15 MB of each binary's 27) and the run times none
    # of them. IABN_GPU_CPU_TARGET=build takes build/ as it is instead (no second build; about
    # 55 MB stripped with three levels).
    cpu_target="${IABN_GPU_CPU_TARGET:-x86-64-linux-avx2-fma-f16c-sse41}"
    build=build-gpu-prepare
    targets=(-DIABN_KERNEL_TARGETS="$cpu_target")
    if [ "$cpu_target" = "build" ]; then
        build=build
        targets=()
    fi
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    # Whatever else the tree was configured with, these need the CUDA kernels and the benchmark;
    # the GPU tuner its CUDA candidates: the dtypes people train in, four values of each tunable
    # around the committed ones (schedules/cuda.params).
    cmake -S . -B "$build" -DIABN_CUDA=ON -DIABN_BUILD_BENCH=ON -DIABN_BUILD_TESTS=ON -DIABN_BUILD_GPU_TUNER=ON \
        -DIABN_GPU_TUNE_DEVICES=cuda "-DIABN_GPU_TUNE_DTYPES=f32;f16;bf16" \
        "-DIABN_GPU_TUNE_VALUES=threads=64,128,512,1024;channel_block=16,32,128,256" \
        ${targets[@]+"${targets[@]}"} >/dev/null
    cmake --build "$build" --target "${programs[@]##*/}"
    mkdir -p "$dir"
    # Symbol tables only go: the kernels (and their PTX) are code and data the binaries keep.
    files=()
    for p in "${programs[@]}"; do
        strip -o "$dir/${p##*/}" "$build/$p"
        files+=("$dir/${p##*/}")
    done
    # Only the C and C++ runtimes may be needed where the binaries go.
    allowed='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|libstdc\+\+\.so|libgcc_s\.so)'
    for f in "${files[@]}"; do
        extra=$(ldd "$f" | awk '{print $1}' | xargs -n1 basename | grep -Ev "$allowed" || true)
        if [ -n "$extra" ]; then
            echo "run.sh --prepare: $f needs libraries a GPU machine may not have: $extra" >&2
            exit 1
        fi
    done
    mib=$(stat -c %s "${files[@]}" | awk '{s += $1} END {print int((s + 1048575) / 1048576)}')
    if [ "$mib" -ge "$max_prepared_mib" ]; then
        echo "run.sh --prepare: the binaries take $mib MiB, not under $max_prepared_mib MiB" >&2
        exit 1
    fi
    glibc=$(objdump -T "${files[@]}" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    glibcxx=$(objdump -T "${files[@]}" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
    {
        echo "built from: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
        cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)
        echo "built on: $(date -u +%Y-%m-%d) $(uname -m), $("$cxx" --version | head -1)"
        echo "build type: $(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2), stripped ($mib MiB)"
        echo "CPU kernel targets: $(grep -m1 '^IABN_KERNEL_TARGETS:' "$build/CMakeCache.txt" | cut -d= -f2)"
        echo "CUDA kernel target: $(grep -m1 '^IABN_CUDA_TARGET:' "$build/CMakeCache.txt" | cut -d= -f2)"
        echo "needs: $glibc, $glibcxx (libstdc++), libgcc_s; the CUDA driver at run time"
    } > "$dir/BUILD-INFO"
    cat "$dir/BUILD-INFO"
    if [ "$1" = "--prepare" ]; then
        echo "prepared $dir ($(du -sh "$dir" | cut -f1)): run there with IABN_GPU_BIN=$dir bash bench/gpu/run.sh"
    else
        echo "prepared $dir ($(du -sh "$dir" | cut -f1)): run there with $dir/iabn-tune-gpu --params schedules/cuda.params --output cuda.params"
    fi
    exit 0
fi

quick=""
repeats=""
for arg in "$@"; do
    case "$arg" in
        --quick) quick=--quick ;;
        [1-9]*) repeats=$arg ;;
        *) echo "usage: bash bench/gpu/run.sh [--quick] [repeats] | --prepare <dir> | --prepare-tuner <dir>" >&2; exit 2 ;;
    esac
done
# Both programs get the same numbers (their own defaults are these too).
if [ -n "$quick" ]; then calls=10 repeats=${repeats:-3}; else calls=20 repeats=${repeats:-7}; fi

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
    out="${IABN_GPU_OUT:-$IABN_GPU_BIN}"
else
    tests=build-gpu/tests/iabn_tests
    bench=build-gpu/bench/gpu/iabn-bench-gpu
    if [ ! -x "$bench" ] || [ ! -x "$tests" ]; then
        source tools/env.sh
        cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DIABN_CUDA=ON >/dev/null
        cmake --build build-gpu --target iabn-bench-gpu iabn_tests
    fi
    out="${IABN_GPU_OUT:-build-gpu}"
fi
mkdir -p "$out" 2>/dev/null || true
[ -w "$out" ] || out=$(mktemp -d)

echo "== CUDA device"
if ! device=$("$bench" --device 2>&1); then
    echo "run.sh: cannot run the GPU benchmark here: $device" >&2
    exit 1
fi
echo "$device"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader || true
fi
count=$("$tests" --gtest_filter="$cuda_filter" --gtest_list_tests | grep -c '^  ' || true)
if [ "$count" -eq 0 ]; then
    echo "run.sh: the filter of the CUDA suite matches no test of $tests: $cuda_filter" >&2
    exit 1
fi
echo "== CUDA correctness suite and structure tests ($count tests)"
SECONDS=0
"$tests" --gtest_brief=1 --gtest_filter="$cuda_filter"
echo "(suite: $SECONDS s)"

echo "== PyTorch"
shapes="$out/gpu-shapes.txt"
torch_times="$out/torch-times.txt"
"$bench" --list-shapes $quick > "$shapes"
torch_python=""
for py in ${IABN_GPU_PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null &&
        "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        torch_python="$py"
        break
    fi
done
SECONDS=0
if [ -n "$torch_python" ]; then
    echo "($torch_python)"
    # Its lines go to the file only (iabn's table shows them); its notes are shown. A failure
    # leaves the columns it did not fill at '-': iabn's run goes on.
    "$torch_python" bench/gpu/torch_bench.py --shapes "$shapes" --calls "$calls" --repeats "$repeats" \
        --budget-s "$budget_s" > "$torch_times" || echo "run.sh: torch_bench.py failed (exit $?)" >&2
    grep '^#' "$torch_times" || true
    echo "$(grep -vc '^#' "$torch_times" || true) times in $torch_times"
else
    echo "no python3 here has PyTorch with CUDA (IABN_GPU_PYTHON, python3, /usr/bin/python3): the tables have no PyTorch times"
    : > "$torch_times"
fi
echo "(PyTorch: $SECONDS s)"

echo "== iabn"
SECONDS=0
"$bench" $quick --calls "$calls" --repeats "$repeats" --budget-s "$budget_s" --torch "$torch_times" |
    tee "$out/iabn-bench-gpu.txt"
echo "(iabn: $SECONDS s; the tables are in $out/iabn-bench-gpu.txt)"
