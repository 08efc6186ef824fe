# `cmake --install`: headers, libiabn.a (runtime + kernels + Halide runtime) and a CMake package,
# so that another project can `find_package(iabn CONFIG REQUIRED)` and link `iabn::iabn`.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(IABN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/iabn")
install(TARGETS iabn EXPORT iabnTargets ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/iabn" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT iabnTargets NAMESPACE iabn:: DESTINATION "${IABN_INSTALL_CMAKEDIR}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/iabnConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/iabnConfig.cmake"
                              INSTALL_DESTINATION "${IABN_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/iabnConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/iabnConfig.cmake" "${PROJECT_BINARY_DIR}/iabnConfigVersion.cmake"
        DESTINATION "${IABN_INSTALL_CMAKEDIR}")
