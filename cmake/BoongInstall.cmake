include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BOONG_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/Boong")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/boong" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT Boong_Development)
install(TARGETS boong EXPORT BoongTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT BoongTargets NAMESPACE Boong:: DESTINATION "${BOONG_CMAKE_DIR}"
        COMPONENT Boong_Development)

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/BoongConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/BoongConfig.cmake" INSTALL_DESTINATION "${BOONG_CMAKE_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/BoongConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/BoongConfig.cmake" "${PROJECT_BINARY_DIR}/BoongConfigVersion.cmake"
        DESTINATION "${BOONG_CMAKE_DIR}" COMPONENT Boong_Development)

# Boong::postgres, when built: same export set, so find_package(Boong) brings
# it (BoongConfig.cmake finds libpqxx and libpq for it first).
if(TARGET boong_postgres)
  install(TARGETS boong_postgres EXPORT BoongTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# Boong::redis, when built: same export set (BoongConfig.cmake finds hiredis for it).
if(TARGET boong_redis)
  install(TARGETS boong_redis EXPORT BoongTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# Boong::rabbitmq, when built: same export set (BoongConfig.cmake finds rabbitmq-c for it).
if(TARGET boong_rabbitmq)
  install(TARGETS boong_rabbitmq EXPORT BoongTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# Boong::prometheus, when built: same export set (BoongConfig.cmake finds prometheus-cpp for it).
if(TARGET boong_prometheus)
  install(TARGETS boong_prometheus EXPORT BoongTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# Boong::backends (make_broker, make_store): always built, linking the backends above.
install(TARGETS boong_backends EXPORT BoongTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Development
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Boong_Runtime
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

# The boong command-line tool, when built: a program, not part of the export set.
if(TARGET boong_cli)
  install(TARGETS boong_cli RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Boong_Runtime)
endif()

# The Prometheus alert rules (docs/metrics.md#alerts), for a Prometheus server to load.
install(FILES "${PROJECT_SOURCE_DIR}/examples/prometheus/boong-alerts.yml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/boong/prometheus" COMPONENT Boong_Runtime)
