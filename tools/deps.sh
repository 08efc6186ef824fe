#!/usr/bin/env bash
# Installs, quietly, whatever of iabn's build and test dependencies is missing (Debian 12).
set -euo pipefail
# libdnnl-dev and gnuplot-nox: the benchmark's oneDNN comparison and its chart (bench/).
# g++-aarch64-linux-gnu and qemu-user: the aarch64 cross build and its tests (tools/cross-aarch64.sh).
# clang and libclang-rt-14-dev (libFuzzer, the sanitizers): the fuzzer (tools/fuzz.sh).
packages=(cmake ninja-build g++ libgtest-dev libhalide14-0-dev libdnnl-dev gnuplot-nox g++-aarch64-linux-gnu qemu-user
          clang libclang-rt-14-dev)
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
