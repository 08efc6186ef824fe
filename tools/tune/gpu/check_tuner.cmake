# ctest iabn_tune_gpu_opencl: iabn-tune-gpu on PoCL, small shapes, every candidate checked against
# the library's kernels (a candidate that differs fails the run) and timed; --margin -100 takes the
# fastest whatever its time, so that the lines it writes can be checked here: one per tuned
# generator and layout, in the build's format, with their notes, and the file's other lines kept.
#   cmake -DTUNER=<iabn-tune-gpu> -DPARAMS=<opencl.params> -DOUTPUT=<file> -P check_tuner.cmake
file(REMOVE "${OUTPUT}")
execute_process(COMMAND "${TUNER}" --device opencl --dtypes f32 --shapes 2x8x6x5,3x40x4x4 --calls 2 --rounds 2
                        --margin -100 --params "${PARAMS}" --output "${OUTPUT}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if (NOT rc EQUAL 0)
    message(FATAL_ERROR "iabn-tune-gpu exited with ${rc}")
endif ()
if (NOT EXISTS "${OUTPUT}")
    message(FATAL_ERROR "iabn-tune-gpu wrote no ${OUTPUT}")
endif ()
file(READ "${OUTPUT}" written)
foreach (gen forward_apply backward_apply gpu_forward_finish gpu_backward_finish)
    foreach (layout nchw nhwc)
        if (NOT written MATCHES "#: iabn-tune-gpu on [^\n]*\n#: command: [^\n]*\n${gen} +opencl +${layout} +\\* +(threads|channel_block)=[0-9]+\n")
            message(FATAL_ERROR "${OUTPUT}: no tuned line '${gen} opencl ${layout} *' with its notes:\n${written}")
        endif ()
    endforeach ()
endforeach ()
# Everything the file had is still there (the committed lines are only outranked).
file(STRINGS "${PARAMS}" committed REGEX "^[^#]")
foreach (line IN LISTS committed)
    string(FIND "${written}" "${line}" at)
    if (at EQUAL -1)
        message(FATAL_ERROR "${OUTPUT}: the line '${line}' of ${PARAMS} is gone")
    endif ()
endforeach ()
