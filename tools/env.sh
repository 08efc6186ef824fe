# Source this (bash): puts the project's pinned toolchain (.toolchain/bin: CMake, ninja; Halide 21
# beside them, which CMakeLists.txt finds there) first on PATH, so that every `cmake` below, and
# any you type, is the one the build needs. tools/deps.sh installs the toolchain.
#   source tools/env.sh
iabn_toolchain="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.toolchain"
if [ ! -x "$iabn_toolchain/bin/cmake" ]; then
    echo "tools/env.sh: no toolchain in $iabn_toolchain: run bash tools/deps.sh first" >&2
    return 1
fi
case ":$PATH:" in
    *":$iabn_toolchain/bin:"*) ;;
    *) export PATH="$iabn_toolchain/bin:$PATH" ;;
esac
unset iabn_toolchain
