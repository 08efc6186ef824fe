# Instantiates the iabn generators for many parameter sets and collects what they emit.
#
#   iabn_add_kernel(GENERATOR <name> DTYPE <f32|f64> LAYOUT <nchw|nhwc> [DEVICE cuda|opencl])
#     runs iabn_<name> for every target in IABN_KERNEL_TARGETS (multi-target dispatch), with the
#     tuned numbers from schedules/${IABN_SCHEDULE_ARCH}.params, against one shared Halide runtime,
#     and records the objects in the global property IABN_KERNEL_OBJECTS and an entry
#     IABN_KERNEL(<name>, <dtype>, <layout>) in IABN_KERNEL_TABLE (for the runtime's dispatch).
#     DEVICE cuda|opencl: the GPU variant instead, iabn_<name>_<dtype>_<layout>_<device>, for
#     IABN_CUDA_TARGET or IABN_OPENCL_TARGET (schedules/gpu.h), entry IABN_CUDA_KERNEL(...) or
#     IABN_OPENCL_KERNEL(...); its objects also go to IABN_CUDA_OBJECTS or IABN_OPENCL_OBJECTS
#     (the ptxas test reads the PTX embedded in the CUDA ones).
#   Every kernel takes Halide's user_context as its first argument (runtime/call.h says why).

# Tuned GeneratorParams for (generator, layout, dtype): the first matching line of the params file.
function(iabn_schedule_params out generator layout dtype)
    set(file "${PROJECT_SOURCE_DIR}/schedules/${IABN_SCHEDULE_ARCH}.params")
    set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
    file(STRINGS "${file}" lines REGEX "^[a-z_]")
    foreach (line IN LISTS lines)
        string(REGEX REPLACE "[ \t]+" ";" fields "${line}")
        list(POP_FRONT fields g l d)
        if (g STREQUAL generator AND (l STREQUAL layout OR l STREQUAL "*") AND (d STREQUAL dtype OR d STREQUAL "*"))
            set(${out} "${fields}" PARENT_SCOPE)
            return()
        endif ()
    endforeach ()
    set(${out} "" PARENT_SCOPE)
endfunction()

# Adds the objects of a Halide library target (kernels or runtime) to the iabn archive, and to
# the global properties named after it, if any.
function(_iabn_collect_objects halide_target)
    get_target_property(sources ${halide_target} SOURCES)
    list(TRANSFORM sources PREPEND "${CMAKE_CURRENT_BINARY_DIR}/")
    foreach (property IABN_KERNEL_OBJECTS ${ARGN})
        set_property(GLOBAL APPEND PROPERTY ${property} ${sources})
    endforeach ()
    set_property(TARGET ${halide_target} PROPERTY EXCLUDE_FROM_ALL ON)
endfunction()

# The target probe comes first: it creates the Halide runtime that every kernel then shares.
function(iabn_add_target_probe)
    add_halide_library(iabn_target_probe FROM iabn_generators GENERATOR iabn_target_probe
                       TARGETS ${IABN_KERNEL_TARGETS} FEATURES ${IABN_KERNEL_FEATURES} user_context)
    _iabn_collect_objects(iabn_target_probe)
    _iabn_collect_objects(iabn_target_probe.runtime)
endfunction()

function(iabn_add_kernel)
    cmake_parse_arguments(K "" "GENERATOR;DTYPE;LAYOUT;DEVICE" "" ${ARGN})
    set(name "iabn_${K_GENERATOR}_${K_DTYPE}_${K_LAYOUT}")
    if (K_DEVICE)
        string(TOUPPER "${K_DEVICE}" api)
        string(APPEND name "_${K_DEVICE}")
        set(targets ${IABN_${api}_TARGET})
        set(tuned "")  # the GPU schedules' numbers are named constants in schedules/gpu.h
        set(entry "IABN_${api}_KERNEL")
        set(also IABN_${api}_OBJECTS)
    else ()
        set(targets ${IABN_KERNEL_TARGETS})
        # The first halves of the synchronized passes run the reductions of forward_stats and
        # backward_reduce with the same schedule, so they take those generators' tuned lines.
        set(tuned_as ${K_GENERATOR})
        if (K_GENERATOR STREQUAL "forward_partials")
            set(tuned_as forward_stats)
        elseif (K_GENERATOR STREQUAL "backward_partials")
            set(tuned_as backward_reduce)
        endif ()
        iabn_schedule_params(tuned ${tuned_as} ${K_LAYOUT} ${K_DTYPE})
        set(entry "IABN_KERNEL")
        set(also "")
    endif ()
    add_halide_library(${name} FROM iabn_generators GENERATOR iabn_${K_GENERATOR}
                       TARGETS ${targets} FEATURES ${IABN_KERNEL_FEATURES} user_context
                       USE_RUNTIME iabn_target_probe.runtime
                       PARAMS dtype=${K_DTYPE} layout=${K_LAYOUT} ${tuned}
                       ${IABN_KERNEL_EXTRA_OUTPUTS})
    _iabn_collect_objects(${name} ${also})
    set_property(GLOBAL APPEND_STRING PROPERTY IABN_KERNEL_TABLE
                 "${entry}(${K_GENERATOR}, ${K_DTYPE}, ${K_LAYOUT})\n")
endfunction()
