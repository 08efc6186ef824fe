# ctest script (cmake -P): install this build into a fresh prefix, then configure, build and run
# examples/consumer against it, as another project would, and check that it needed no Halide.
#   -DBUILD_DIR=<iabn build> -DSOURCE_DIR=<iabn source> -DWORK_DIR=<scratch> -DGENERATOR=<cmake generator>
#   [-DCONSUMER_CMAKE=<the CMake the consumer is built with; default: this one>]
#   [-DTOOLCHAIN_FILE=<cross toolchain> -DEMULATOR=<runner, arguments joined by '|'>] for a cross build
file(REMOVE_RECURSE "${WORK_DIR}")
function(step)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if (NOT rc EQUAL 0)
        message(FATAL_ERROR "consumer test: step failed (${rc}): ${ARGN}")
    endif ()
endfunction()
step("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
set(cross "")
if (TOOLCHAIN_FILE)
    set(cross "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
endif ()
string(REPLACE "|" ";" emulator "${EMULATOR}")
# The consumer needs no Halide: it is configured with Halide's packages disabled (a package that
# asked for them would fail), with CONSUMER_CMAKE (the build passes Debian's CMake 3.25, which
# Halide 21's package refuses: it needs 3.28), and its program must not load libHalide.
if (NOT CONSUMER_CMAKE)
    set(CONSUMER_CMAKE "${CMAKE_COMMAND}")
endif ()
step("${CONSUMER_CMAKE}" -S "${SOURCE_DIR}/examples/consumer" -B "${WORK_DIR}/build" -G "${GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release
     -DCMAKE_DISABLE_FIND_PACKAGE_Halide=ON -DCMAKE_DISABLE_FIND_PACKAGE_HalideHelpers=ON ${cross})
step("${CONSUMER_CMAKE}" --build "${WORK_DIR}/build")
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" halide_entries REGEX "^Halide")
file(STRINGS "${WORK_DIR}/build/iabn_consumer" halide_libraries REGEX "libHalide")
if (halide_entries OR halide_libraries)
    message(FATAL_ERROR "consumer test: the consumer of the installed package found or linked Halide: "
                        "${halide_entries} ${halide_libraries}")
endif ()
execute_process(COMMAND "${CONSUMER_CMAKE}" --version OUTPUT_VARIABLE version)
string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" version "${version}")
message(STATUS "consumer test: built with CMake ${version} (${CONSUMER_CMAKE}), no Halide found or linked")
step(${emulator} "${WORK_DIR}/build/iabn_consumer")
