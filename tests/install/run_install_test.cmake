# cmake -P script behind the install_consumer test: install the built project
# into WORK_DIR/prefix, then configure, build and run tests/install/consumer
# against it. Fails on the first step that fails.
#
# Inputs (-D): BOONG_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CONFIG GENERATOR
#              CXX_COMPILER [CXX_COMPILER_LAUNCHER CXX_FLAGS EXE_LINKER_FLAGS EXPECT_CLI]
cmake_minimum_required(VERSION 3.25)

foreach(var BOONG_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# run(<step> COMMAND ...): execute_process that stops the test when it fails.
function(run step)
  message(STATUS "install_consumer: ${step}")
  execute_process(${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${step} failed (${rc})")
  endif()
endfunction()

set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()

run("install into ${prefix}"
  COMMAND "${CMAKE_COMMAND}" --install "${BOONG_BUILD_DIR}" --prefix "${prefix}" ${config_args})

# The boong tool, when it was built: installed in bin/, and it runs.
if(EXPECT_CLI)
  if(NOT EXISTS "${prefix}/bin/boong")
    message(FATAL_ERROR "install_consumer: ${prefix}/bin/boong was not installed")
  endif()
  run("run ${prefix}/bin/boong --version" COMMAND "${prefix}/bin/boong" --version)
endif()

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  "-DBOONG_EXPECTED_PREFIX=${prefix}"
  "-DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON")
if(CONFIG)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
if(CXX_COMPILER_LAUNCHER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER}")
endif()
if(CXX_FLAGS)
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
if(EXE_LINKER_FLAGS)
  list(APPEND configure_args "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
endif()
run("configure the consumer" COMMAND "${CMAKE_COMMAND}" ${configure_args})
run("build the consumer" COMMAND "${CMAKE_COMMAND}" --build "${consumer_build}" ${config_args})

# Single-config generators put the binary at the top, multi-config ones in <config>/.
set(consumer_exe "${consumer_build}/consumer")
if(NOT EXISTS "${consumer_exe}" AND CONFIG)
  set(consumer_exe "${consumer_build}/${CONFIG}/consumer")
endif()
run("run the consumer" COMMAND "${consumer_exe}")
message(STATUS "install_consumer: passed")
