# Sanitized builds of the runtime and of the test suite, linked with the kernels as they are.
#
#   iabn_add_sanitized_suite(<name> LABEL <label> FLAGS <flags...> SOURCES <test sources...>
#                            [ARGS <test arguments...>] [ENVIRONMENT <VAR=value...>])
#     iabn_<name>        the runtime's sources (those of `iabn`) compiled and linked with FLAGS,
#                        plus `iabn_kernels`: the Halide kernels and Halide runtime of the normal
#                        build, neither regenerated nor instrumented
#     iabn_tests_<name>  SOURCES compiled with FLAGS and the options of `iabn_tests`, linked with
#                        what `iabn_tests` links, iabn_<name> in place of iabn and, in place of
#                        each static library of the project it links (the tests' support
#                        libraries, tests/support), <library>_<name>: its sources compiled with
#                        FLAGS and its own options, linked in the same way
#     ctest              iabn_tests_<name>: the whole binary as one test (ARGS: e.g. a
#                        --gtest_filter), label LABEL, run with ENVIRONMENT
# Called from tests/CMakeLists.txt, where GoogleTest's targets and iabn_tests are defined.

# Sets <out> to what the suite <name> links in place of the library <lib>: iabn_<name> for iabn, a
# copy made once (<lib>_<name>) for the other static libraries of the project, <lib> itself for
# anything else (GoogleTest, Threads, system libraries).
function(_iabn_sanitized_library name lib out)
    set(${out} "${lib}" PARENT_SCOPE)
    if (lib STREQUAL "iabn::iabn" OR lib STREQUAL "iabn")
        set(${out} iabn_${name} PARENT_SCOPE)
        return()
    endif ()
    if (NOT TARGET "${lib}")
        return()
    endif ()
    get_target_property(type ${lib} TYPE)
    get_target_property(imported ${lib} IMPORTED)
    get_target_property(aliased ${lib} ALIASED_TARGET)
    if (imported OR aliased OR NOT type STREQUAL "STATIC_LIBRARY")
        return()
    endif ()
    set(copy ${lib}_${name})
    if (NOT TARGET ${copy})
        get_target_property(dir ${lib} SOURCE_DIR)
        get_target_property(sources ${lib} SOURCES)
        list(TRANSFORM sources PREPEND "${dir}/" REGEX "^[^/$]")
        add_library(${copy} STATIC EXCLUDE_FROM_ALL ${sources})
        foreach (property CXX_STANDARD CXX_STANDARD_REQUIRED CXX_EXTENSIONS COMPILE_OPTIONS COMPILE_DEFINITIONS
                          COMPILE_FEATURES INCLUDE_DIRECTORIES INTERFACE_COMPILE_FEATURES INTERFACE_INCLUDE_DIRECTORIES)
            get_target_property(value ${lib} ${property})
            if (NOT value MATCHES "-NOTFOUND$")
                set_property(TARGET ${copy} PROPERTY ${property} ${value})
            endif ()
        endforeach ()
        get_target_property(libraries ${lib} LINK_LIBRARIES)
        _iabn_sanitized_libraries(${name} copies ${libraries})
        target_link_libraries(${copy} PUBLIC ${copies})
    endif ()
    set(${out} ${copy} PARENT_SCOPE)
endfunction()

# Sets <out> to what the suite <name> links in place of each of the libraries that follow.
function(_iabn_sanitized_libraries name out)
    set(copies "")
    foreach (lib IN LISTS ARGN)
        _iabn_sanitized_library(${name} "${lib}" c)
        list(APPEND copies "${c}")
    endforeach ()
    set(${out} ${copies} PARENT_SCOPE)
endfunction()

function(iabn_add_sanitized_suite name)
    cmake_parse_arguments(S "" "LABEL" "FLAGS;SOURCES;ARGS;ENVIRONMENT" ${ARGN})

    get_target_property(runtime_dir iabn SOURCE_DIR)
    get_target_property(runtime_sources iabn SOURCES)
    get_property(kernel_objects GLOBAL PROPERTY IABN_KERNEL_OBJECTS)
    list(REMOVE_ITEM runtime_sources ${kernel_objects})
    list(TRANSFORM runtime_sources PREPEND "${runtime_dir}/")
    add_library(iabn_${name} STATIC ${runtime_sources})
    target_include_directories(iabn_${name}
                               PUBLIC "$<TARGET_PROPERTY:iabn,INTERFACE_INCLUDE_DIRECTORIES>"
                               PRIVATE "$<TARGET_PROPERTY:iabn,INCLUDE_DIRECTORIES>")
    target_compile_definitions(iabn_${name} PRIVATE "$<TARGET_PROPERTY:iabn,COMPILE_DEFINITIONS>")
    target_compile_features(iabn_${name} PUBLIC cxx_std_17)
    target_compile_options(iabn_${name} PUBLIC ${S_FLAGS})
    target_link_options(iabn_${name} PUBLIC ${S_FLAGS})
    target_link_libraries(iabn_${name} PUBLIC iabn_kernels)

    set(exe iabn_tests_${name})
    add_executable(${exe} ${S_SOURCES})
    foreach (property CXX_STANDARD CXX_STANDARD_REQUIRED CXX_EXTENSIONS COMPILE_OPTIONS INCLUDE_DIRECTORIES)
        get_target_property(value iabn_tests ${property})
        if (NOT value MATCHES "-NOTFOUND$")
            set_property(TARGET ${exe} PROPERTY ${property} ${value})
        endif ()
    endforeach ()
    get_target_property(libraries iabn_tests LINK_LIBRARIES)
    _iabn_sanitized_libraries(${name} copies ${libraries})
    target_link_libraries(${exe} PRIVATE ${copies})

    add_test(NAME ${exe} COMMAND ${exe} --gtest_brief=1 ${S_ARGS})
    set_tests_properties(${exe} PROPERTIES LABELS ${S_LABEL} ENVIRONMENT "${S_ENVIRONMENT}")
endfunction()
