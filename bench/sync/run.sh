#!/usr/bin/env bash
# Runs iabn-bench-sync on 3 processes of this machine (IABN_MPI_PROCS=<n> for another count),
# with the flags Open MPI needs in a container, as root, on fewer cores than processes
# (cmake/IabnMpi.cmake says what each is for).
#   bench/sync/run.sh [build dir, default build] [iabn-bench-sync flags: --shape 8,256,56,56 ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build
if [[ $# -gt 0 && $1 != --* ]]; then
    build=$1
    shift
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --oversubscribe --bind-to none --mca btl self,vader --mca pml ob1 \
    --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo \
    -np "${IABN_MPI_PROCS:-3}" "$build/bench/sync/iabn-bench-sync" "$@"
