# Cross build for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu. Programs the build runs
# (ctest, GoogleTest's test discovery, the consumer test) go through qemu-aarch64, with the cross
# sysroot's dynamic loader and libraries. tools/cross-aarch64.sh uses this file; see docs/arm.md.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(IABN_AARCH64_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "Libraries of the aarch64 target (Debian's cross sysroot)")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${IABN_AARCH64_SYSROOT})

# Headers and libraries from the target's sysroot only; programs (ninja, qemu) from the host.
# Packages from both: the kernels come from a host build's generators (their CMake package) and
# use Halide's CMake helpers, which are host files; a consumer's own prefix must be found too.
set(CMAKE_FIND_ROOT_PATH ${IABN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
