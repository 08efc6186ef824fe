#!/usr/bin/env bash
# Installs, quietly, whatever of iabn's build and test dependencies is missing (Debian 12): the
# Debian packages below, then the pinned toolchain (Halide 21, CMake, ninja: tools/requirements.txt)
# into .toolchain/, a venv of Debian's /usr/bin/python3. tools/env.sh puts it first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs with --no-install-recommends, so what a package only recommends is named here:
# oneDNN's CMake package needs OpenCL's (ocl-icd-opencl-dev), on a minimal Debian 12.
# cmake (Debian's 3.25): the installed-package test builds its consumer with it, as a user whose
# project knows nothing of Halide would (the iabn build itself takes the pinned CMake).
# python3-venv: the toolchain's venv (and the PyTorch package's).
# libdnnl-dev and gnuplot-nox: the benchmark's oneDNN comparison and its chart (bench/).
# g++-aarch64-linux-gnu and qemu-user: the aarch64 cross build and its tests (tools/cross-aarch64.sh).
# The sanitized test suites (IABN_SANITIZERS) need nothing more: g++ brings libasan8, libubsan1
# and libtsan2 (through libgcc-12-dev).
# clang and libclang-rt-14-dev (libFuzzer, the sanitizers): the fuzzer (tools/fuzz.sh).
# python3-torch, python3-pytest, python3-venv, python3-dev: the PyTorch package (python/) and its
# tests, with Debian's /usr/bin/python3 (tools/python.sh); python3-setuptools, python3-wheel and
# python3-pybind11: what builds it there, without network (pip install --no-build-isolation).
# pocl-opencl-icd: an OpenCL device on the CPU, where the Device::opencl tests run (the OpenCL ICD
# loader, libOpenCL.so.1, comes with ocl-icd-opencl-dev).
# libopenmpi-dev and openmpi-bin (Open MPI: mpicxx, mpirun): the synchronized passes across
# processes, with MPI_Allgather (examples/mpi, tests/mpi, bench/sync; CMake option IABN_MPI).
packages=(cmake ninja-build g++ git libgtest-dev
          libdnnl-dev ocl-icd-opencl-dev pocl-opencl-icd gnuplot-nox g++-aarch64-linux-gnu qemu-user
          clang libclang-rt-14-dev python3-torch python3-pytest python3-venv python3-dev
          python3-setuptools python3-wheel python3-pybind11 libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "iabn: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned toolchain, (re)installed when tools/requirements.txt differs from the copy kept with
# it. /usr/bin/python3: the Python Debian's packages belong to (another may come first on PATH).
toolchain=.toolchain
if ! cmp -s tools/requirements.txt "$toolchain/requirements.txt"; then
    echo "iabn: installing the pinned toolchain into $toolchain/ (tools/requirements.txt)"
    [ -x "$toolchain/bin/python" ] || /usr/bin/python3 -m venv "$toolchain"
    "$toolchain/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r tools/requirements.txt
    cp tools/requirements.txt "$toolchain/requirements.txt"
fi
