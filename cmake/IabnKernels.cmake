# Instantiates the iabn generators for many parameter sets and collects what they emit.
#
#   iabn_add_kernel(GENERATOR <name> DTYPE <f32|f64> LAYOUT <nchw|nhwc> [DEVICE cuda|opencl])
#     runs iabn_<name> for every target in IABN_KERNEL_TARGETS (multi-target dispatch), with the
#     tuned numbers of each target's dispatch level from IABN_SCHEDULE_PARAMS (by default
#     schedules/${IABN_SCHEDULE_ARCH}.params), against one shared Halide runtime,
#     and records the objects in the global property IABN_KERNEL_OBJECTS and an entry
#     IABN_KERNEL(<name>, <dtype>, <layout>) in IABN_KERNEL_TABLE (for the runtime's dispatch).
#     DEVICE cuda|opencl: the GPU variant instead, iabn_<name>_<dtype>_<layout>_<device>, for
#     IABN_CUDA_TARGET or IABN_OPENCL_TARGET (schedules/gpu.h), entry IABN_CUDA_KERNEL(...) or
#     IABN_OPENCL_KERNEL(...); its objects also go to IABN_CUDA_OBJECTS or IABN_OPENCL_OBJECTS
#     (the ptxas test reads the PTX embedded in the CUDA ones).
#   NAME <kernel>: the table's name, where a generator is instantiated with other PARAMS.
#   CANDIDATE SLOT <kernel> (GPU only): a candidate of the GPU tuner (tools/tune/gpu) for the
#     library's kernel <kernel>, not a kernel of the library: PARAMS replace the same names of the
#     params file's line, the objects go to IABN_TUNE_CANDIDATE_OBJECTS and the entry
#     IABN_TUNE_CANDIDATE(<NAME>, <dtype>, <layout>, <device>, <generator>, <kernel>, <name>,
#     <value>) (the tunable PARAMS sets) to IABN_TUNE_CANDIDATE_TABLE.
#   Every kernel takes Halide's user_context as its first argument (runtime/call.h says why).
include_guard(GLOBAL)

# The CPU dispatch levels of schedules/dispatch_levels.def (most capable first) and their
# default targets: IABN_DISPATCH_LEVELS (names), IABN_DISPATCH_LEVEL_TARGET_<name>.
file(STRINGS "${PROJECT_SOURCE_DIR}/schedules/dispatch_levels.def" _iabn_level_lines
     REGEX "^IABN_DISPATCH_LEVEL\\(")
set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${PROJECT_SOURCE_DIR}/schedules/dispatch_levels.def")
set(IABN_DISPATCH_LEVELS "")
foreach (line IN LISTS _iabn_level_lines)
    if (NOT line MATCHES "^IABN_DISPATCH_LEVEL\\(([a-z0-9_]+), \"([^\"]+)\"\\)")
        message(FATAL_ERROR "schedules/dispatch_levels.def: cannot read '${line}'")
    endif ()
    list(APPEND IABN_DISPATCH_LEVELS ${CMAKE_MATCH_1})
    set(IABN_DISPATCH_LEVEL_TARGET_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
endforeach ()

# The dispatch level a kernel target compiles for, by the rule of schedules/dispatch_levels.h:
# the first level whose name is one of the target's '-'-separated words.
function(iabn_dispatch_level out target)
    string(REPLACE "-" ";" words "${target}")
    foreach (level IN LISTS IABN_DISPATCH_LEVELS)
        if (level IN_LIST words)
            set(${out} ${level} PARENT_SCOPE)
            return()
        endif ()
    endforeach ()
    string(REPLACE ";" ", " names "${IABN_DISPATCH_LEVELS}")
    message(FATAL_ERROR "kernel target ${target} is of no dispatch level (none of its words is ${names}: "
                        "schedules/dispatch_levels.def)")
endfunction()

# The data lines of a schedule params file, checked once (a mistake in a user's file fails the
# configure step with its line, not a generator run later):
#   <generator> <level|*> <layout|*> <dtype|*> <name>=<value>...
# `set`: cpu (IABN_SCHEDULE_PARAMS; level: a dispatch level), cuda or opencl
# (IABN_CUDA_SCHEDULE_PARAMS, IABN_OPENCL_SCHEDULE_PARAMS; level: the API's name).
# A kernel takes, for each dispatch level, the line of its generator that matches the level,
# layout and dtype and names the most of them (a '*' matches anything); among equals, the first.
# tools/tune/params_file.cpp applies the same rule.
# The names a line may set: schedules/tunables.def.
file(STRINGS "${PROJECT_SOURCE_DIR}/schedules/tunables.def" _iabn_tunable_lines REGEX "^IABN_(CPU|GPU)_TUNABLE\\(")
set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${PROJECT_SOURCE_DIR}/schedules/tunables.def")
set(_iabn_tunables_cpu "")
set(_iabn_tunables_gpu "")
foreach (line IN LISTS _iabn_tunable_lines)
    string(REGEX MATCH "^IABN_(CPU|GPU)_TUNABLE\\(([a-z_]+)," _ "${line}")
    string(TOLOWER "${CMAKE_MATCH_1}" _set)
    list(APPEND _iabn_tunables_${_set} ${CMAKE_MATCH_2})
endforeach ()
set(_iabn_levels_cpu ${IABN_DISPATCH_LEVELS})
set(_iabn_tunables_cuda ${_iabn_tunables_gpu})
set(_iabn_levels_cuda cuda)
set(_iabn_tunables_opencl ${_iabn_tunables_gpu})
set(_iabn_levels_opencl opencl)
function(_iabn_read_schedule_params set)
    get_property(done GLOBAL PROPERTY IABN_SCHEDULE_LINES_${set} SET)
    if (done)
        return()
    endif ()
    if (set STREQUAL "cpu")
        set(file "${IABN_SCHEDULE_PARAMS}")
    else ()
        string(TOUPPER "${set}" api)
        set(file "${IABN_${api}_SCHEDULE_PARAMS}")
    endif ()
    set(tunables ${_iabn_tunables_${set}})
    set(levels ${_iabn_levels_${set}})
    set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
    file(STRINGS "${file}" lines REGEX "^[^#]")
    set(checked "")
    foreach (line IN LISTS lines)
        string(STRIP "${line}" stripped)
        if (stripped STREQUAL "")
            continue()
        endif ()
        string(REGEX REPLACE "[ \t]+" ";" fields "${stripped}")
        list(LENGTH fields n)
        set(bad "")
        if (n LESS 5)
            set(bad "expected <generator> <level|*> <layout|*> <dtype|*> <name>=<value>...")
        else ()
            list(GET fields 1 level)
            list(GET fields 2 layout)
            list(GET fields 3 dtype)
            list(SUBLIST fields 4 -1 values)
            if (NOT level STREQUAL "*" AND NOT level IN_LIST levels)
                string(REPLACE ";" ", " names "${levels}")
                set(bad "level '${level}' is none of *, ${names}")
            elseif (NOT layout MATCHES "^(\\*|nchw|nhwc)$")
                set(bad "layout '${layout}' is none of *, nchw, nhwc")
            elseif (NOT dtype MATCHES "^(\\*|f32|f64|f16|bf16)$")
                set(bad "dtype '${dtype}' is none of *, f32, f64, f16, bf16")
            endif ()
            foreach (v IN LISTS values)
                if (bad STREQUAL "" AND NOT v MATCHES "^([a-z_]+)=[0-9]+$")
                    set(bad "'${v}' is not <name>=<integer>")
                elseif (bad STREQUAL "" AND NOT CMAKE_MATCH_1 IN_LIST tunables)
                    set(bad "'${CMAKE_MATCH_1}' is none of ${tunables}")
                endif ()
            endforeach ()
        endif ()
        if (NOT bad STREQUAL "")
            message(FATAL_ERROR "${file}: ${bad}, in the line:\n  ${line}")
        endif ()
        string(REPLACE ";" " " canonical "${fields}")
        list(APPEND checked "${canonical}")
    endforeach ()
    set_property(GLOBAL PROPERTY IABN_SCHEDULE_LINES_${set} "${checked}")
endfunction()

# The line a (generator, level, layout, dtype) takes in the params of `set` (empty if none matches).
function(iabn_schedule_line out set generator level layout dtype)
    _iabn_read_schedule_params(${set})
    get_property(lines GLOBAL PROPERTY IABN_SCHEDULE_LINES_${set})
    set(best "")
    set(best_score -1)
    foreach (line IN LISTS lines)
        string(REPLACE " " ";" fields "${line}")
        list(GET fields 0 g)
        if (NOT g STREQUAL generator)
            continue()
        endif ()
        set(score 0)
        set(i 1)
        foreach (want IN ITEMS ${level} ${layout} ${dtype})
            list(GET fields ${i} have)
            math(EXPR i "${i} + 1")
            if (have STREQUAL want)
                math(EXPR score "${score} + 1")
            elseif (NOT have STREQUAL "*")
                set(score -1)
                break()
            endif ()
        endforeach ()
        if (score GREATER best_score)
            set(best "${line}")
            set(best_score ${score})
        endif ()
    endforeach ()
    set(${out} "${best}" PARENT_SCOPE)
endfunction()

# The GeneratorParams of a GPU kernel: the <name>=<value> of its line in the API's params file
# (the generator declares them: generators/tunables.h). The choice also goes to
# IABN_SCHEDULE_INFO.
function(iabn_gpu_schedule_params out generator kernel device layout dtype)
    iabn_schedule_line(line ${device} ${generator} ${device} ${layout} ${dtype})
    if (line STREQUAL "")
        set_property(GLOBAL APPEND_STRING PROPERTY IABN_SCHEDULE_INFO
                     "${kernel} ${device}: no line for ${generator}, the generator's defaults\n")
        set(${out} "" PARENT_SCOPE)
        return()
    endif ()
    set_property(GLOBAL APPEND_STRING PROPERTY IABN_SCHEDULE_INFO "${kernel} ${device}: ${line}\n")
    string(REPLACE " " ";" fields "${line}")
    list(SUBLIST fields 4 -1 values)
    set(${out} ${values} PARENT_SCOPE)
endfunction()

# The GeneratorParams of a CPU kernel: levels=<level>:<name>:<value>,.../<level>:... with the
# numbers of each dispatch level among `targets` (the generators pick their target's entry;
# generators/iabn_generator.h). Each level's choice also goes to the global property
# IABN_SCHEDULE_INFO, which the library reports (iabn::schedule_info()).
function(iabn_schedule_params out generator kernel layout dtype targets)
    set(entries "")
    foreach (target IN LISTS targets)
        iabn_dispatch_level(level "${target}")
        iabn_schedule_line(line cpu ${generator} ${level} ${layout} ${dtype})
        if (line STREQUAL "")
            set_property(GLOBAL APPEND_STRING PROPERTY IABN_SCHEDULE_INFO
                         "${kernel} ${level}: no line for ${generator}, the generator's defaults\n")
            continue()
        endif ()
        string(REPLACE " " ";" fields "${line}")
        list(SUBLIST fields 4 -1 values)
        string(REPLACE "=" ":" values "${values}")
        string(REPLACE ";" "," values "${values}")
        list(APPEND entries "${level}:${values}")
        set_property(GLOBAL APPEND_STRING PROPERTY IABN_SCHEDULE_INFO "${kernel} ${level}: ${line}\n")
    endforeach ()
    if (entries)
        string(REPLACE ";" "/" entries "${entries}")
        set(${out} "levels=${entries}" PARENT_SCOPE)
    else ()
        set(${out} "" PARENT_SCOPE)
    endif ()
endfunction()

# Adds the objects of a Halide library target (kernels or runtime) to the global properties named
# after it (IABN_KERNEL_OBJECTS: the iabn archive's).
function(_iabn_collect_objects halide_target)
    get_target_property(relative_or_absolute ${halide_target} SOURCES)
    # (Halide names the kernels' objects with absolute paths, the runtime's with a relative one.)
    set(sources "")
    foreach (source IN LISTS relative_or_absolute)
        cmake_path(ABSOLUTE_PATH source BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
        list(APPEND sources "${source}")
    endforeach ()
    foreach (property IN LISTS ARGN)
        set_property(GLOBAL APPEND PROPERTY ${property} ${sources})
    endforeach ()
    set_property(TARGET ${halide_target} PROPERTY EXCLUDE_FROM_ALL ON)
endfunction()

# The target probe comes first: it creates the Halide runtime that every kernel then shares.
function(iabn_add_target_probe)
    add_halide_library(iabn_target_probe FROM iabn_generators GENERATOR iabn_target_probe
                       TARGETS ${IABN_KERNEL_TARGETS} FEATURES ${IABN_KERNEL_FEATURES} user_context)
    _iabn_collect_objects(iabn_target_probe IABN_KERNEL_OBJECTS)
    _iabn_collect_objects(iabn_target_probe.runtime IABN_KERNEL_OBJECTS)
endfunction()

# Elements of `dtype` in 128 bits (the GPU applies' vectors; runtime/plan.h, gpu_vector_elements()).
function(iabn_vector_elements out dtype)
    if (dtype STREQUAL "f64")
        set(${out} 2 PARENT_SCOPE)
    elseif (dtype STREQUAL "f32")
        set(${out} 4 PARENT_SCOPE)
    else ()
        set(${out} 8 PARENT_SCOPE)
    endif ()
endfunction()

function(iabn_add_kernel)
    # NAME: the kernel's name in the dispatch table, where one generator is instantiated with
    # other PARAMS (a variant: e.g. forward_apply_vector, forward_apply with vector=4).
    # SMALL_BUFFERS: without large_buffers (32-bit indices, so tensors under 2 GB): Halide
    # proves a vector's alignment only from 32-bit index math.
    cmake_parse_arguments(K "SMALL_BUFFERS;CANDIDATE" "GENERATOR;NAME;DTYPE;LAYOUT;DEVICE;SLOT" "PARAMS" ${ARGN})
    set(features ${IABN_KERNEL_FEATURES})
    if (K_SMALL_BUFFERS)
        list(REMOVE_ITEM features large_buffers)
    endif ()
    if (NOT K_NAME)
        set(K_NAME ${K_GENERATOR})
    endif ()
    set(name "iabn_${K_NAME}_${K_DTYPE}_${K_LAYOUT}")
    set(objects IABN_KERNEL_OBJECTS)
    if (K_CANDIDATE)
        # The params file's numbers but those the candidate tries (Halide refuses a GeneratorParam
        # given twice, so the line's value of a name PARAMS sets is dropped).
        iabn_schedule_line(line ${K_DEVICE} ${K_GENERATOR} ${K_DEVICE} ${K_LAYOUT} ${K_DTYPE})
        set(tuned "")
        if (NOT line STREQUAL "")
            string(REPLACE " " ";" fields "${line}")
            list(SUBLIST fields 4 -1 tuned)
        endif ()
        set(tried "")
        foreach (p IN LISTS K_PARAMS)
            string(REGEX REPLACE "=.*" "" p_name "${p}")
            list(FILTER tuned EXCLUDE REGEX "^${p_name}=")
            if (p_name IN_LIST _iabn_tunables_${K_DEVICE})
                string(REPLACE "=" ", " tried "${p}")
            endif ()
        endforeach ()
        string(APPEND name "_${K_DEVICE}")
        string(TOUPPER "${K_DEVICE}" api)
        set(targets ${IABN_${api}_TARGET})
        set(objects IABN_TUNE_CANDIDATE_OBJECTS)
        set(entry "IABN_TUNE_CANDIDATE(${K_NAME}, ${K_DTYPE}, ${K_LAYOUT}, ${K_DEVICE}, ${K_GENERATOR}, ${K_SLOT}, ${tried})")
        set(table IABN_TUNE_CANDIDATE_TABLE)
    elseif (K_DEVICE)
        string(TOUPPER "${K_DEVICE}" api)
        string(APPEND name "_${K_DEVICE}")
        set(targets ${IABN_${api}_TARGET})
        # The GPU numbers from the API's params file (the per-channel kernels, LAYOUT any, match
        # the file's layout column with '*' only).
        iabn_gpu_schedule_params(tuned ${K_GENERATOR} ${name} ${K_DEVICE} ${K_LAYOUT} ${K_DTYPE})
        set(entry "IABN_${api}_KERNEL(${K_NAME}, ${K_DTYPE}, ${K_LAYOUT})")
        list(APPEND objects IABN_${api}_OBJECTS)
        set(table IABN_KERNEL_TABLE)
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
        # The per-channel pipelines (LAYOUT any) have no schedule numbers.
        set(tuned "")
        if (NOT K_LAYOUT STREQUAL "any")
            iabn_schedule_params(tuned ${tuned_as} ${name} ${K_LAYOUT} ${K_DTYPE} "${targets}")
        endif ()
        set(entry "IABN_KERNEL(${K_NAME}, ${K_DTYPE}, ${K_LAYOUT})")
        set(table IABN_KERNEL_TABLE)
    endif ()
    add_halide_library(${name} FROM iabn_generators GENERATOR iabn_${K_GENERATOR}
                       TARGETS ${targets} FEATURES ${features} user_context
                       USE_RUNTIME iabn_target_probe.runtime
                       PARAMS dtype=${K_DTYPE} layout=${K_LAYOUT} ${K_PARAMS} ${tuned}
                       ${IABN_KERNEL_EXTRA_OUTPUTS})
    _iabn_collect_objects(${name} ${objects})
    set_property(GLOBAL APPEND_STRING PROPERTY ${table} "${entry}\n")
endfunction()
