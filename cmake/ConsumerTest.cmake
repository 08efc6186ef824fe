# ctest script (cmake -P): install this build into a fresh prefix, then configure, build and run
# examples/consumer against it, as another project would.
#   -DBUILD_DIR=<iabn build> -DSOURCE_DIR=<iabn source> -DWORK_DIR=<scratch> -DGENERATOR=<cmake generator>
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
step("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/examples/consumer" -B "${WORK_DIR}/build" -G "${GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release ${cross})
step("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
step(${emulator} "${WORK_DIR}/build/iabn_consumer")
