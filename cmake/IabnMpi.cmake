# How ctest starts the MPI programs of iabn (tests/mpi, examples/mpi, bench/sync): mpirun
# (FindMPI's MPIEXEC_EXECUTABLE) with IABN_MPI_PROCS processes on this machine alone.
#
#   iabn_add_mpi_test(<name> TIMEOUT <seconds> COMMAND <program> [<args>...])
#     ctest <name>: mpirun <IABN_MPIEXEC_FLAGS> --timeout <seconds - 10> -np <IABN_MPI_PROCS>
#     <program> <args>, label `mpi`, ctest's TIMEOUT <seconds>; mpirun's own --timeout (Open MPI)
#     kills every rank first, so that a hung job leaves no process behind.
#   IABN_MPIRUN: that command line up to the program (a list), for tests that start mpirun
#     themselves (tests/mpi/expect_abort.cmake).
#
# Included from the top-level CMakeLists.txt after find_package(MPI COMPONENTS CXX).
set(IABN_MPI_PROCS 3 CACHE STRING "Processes of the MPI tests, example and benchmark smoke run")

# Open MPI (Debian's openmpi-bin) inside a container, as root, with fewer cores than processes:
#   --oversubscribe                  3 processes on 2 cores (Open MPI refuses more than one a core);
#   --bind-to none                   each process's kernels may use every core (Open MPI binds to a
#                                    core when np <= 2);
#   --mca btl self,vader             shared memory only: no TCP or InfiniBand transport is probed;
#   --mca pml ob1                    the point-to-point layer over those (not UCX, which would probe
#                                    the network devices);
#   --mca btl_vader_single_copy_mechanism none
#                                    no CMA (process_vm_readv) for large messages: a container's
#                                    seccomp or ptrace policy may refuse it ("Read -1, expected
#                                    ..., errno = 1");
#   --mca oob_tcp_if_include lo      mpirun's own wire-up over loopback only.
# The environment adds OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (mpirun
# refuses root without them). Other MPI implementations get none of these flags.
execute_process(COMMAND "${MPIEXEC_EXECUTABLE}" --version OUTPUT_VARIABLE _iabn_mpiexec_version
                ERROR_VARIABLE _iabn_mpiexec_version RESULT_VARIABLE _iabn_mpiexec_rc TIMEOUT 30)
if (_iabn_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(_iabn_mpiexec_flags --oversubscribe --bind-to none --mca btl self,vader --mca pml ob1
                            --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo)
    set(IABN_MPIEXEC_IS_OPENMPI ON)
else ()
    set(_iabn_mpiexec_flags "")
    set(IABN_MPIEXEC_IS_OPENMPI OFF)
    message(STATUS "iabn: ${MPIEXEC_EXECUTABLE} is not Open MPI's: the MPI tests run it without Open MPI's flags")
endif ()
set(IABN_MPIEXEC_FLAGS "${_iabn_mpiexec_flags}" CACHE STRING "mpirun flags of the MPI tests (a list)")
set(IABN_MPI_ENVIRONMENT OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
set(IABN_MPIRUN "${MPIEXEC_EXECUTABLE}" ${IABN_MPIEXEC_FLAGS} ${MPIEXEC_NUMPROC_FLAG} ${IABN_MPI_PROCS}
    ${MPIEXEC_PREFLAGS})

function(iabn_add_mpi_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "COMMAND" ${ARGN})
    if (NOT T_TIMEOUT OR NOT T_COMMAND)
        message(FATAL_ERROR "iabn_add_mpi_test(${name}): TIMEOUT and COMMAND are required")
    endif ()
    set(job_timeout "")
    if (IABN_MPIEXEC_IS_OPENMPI)
        math(EXPR seconds "${T_TIMEOUT} - 10")
        set(job_timeout --timeout ${seconds})
    endif ()
    list(POP_FRONT T_COMMAND program)
    add_test(NAME ${name}
             COMMAND "${MPIEXEC_EXECUTABLE}" ${IABN_MPIEXEC_FLAGS} ${job_timeout} ${MPIEXEC_NUMPROC_FLAG}
                     ${IABN_MPI_PROCS} ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${program}> ${MPIEXEC_POSTFLAGS}
                     ${T_COMMAND})
    set_tests_properties(${name} PROPERTIES LABELS mpi TIMEOUT ${T_TIMEOUT}
                         ENVIRONMENT "${IABN_MPI_ENVIRONMENT}")
endfunction()
