# Runs one compile-fail case: builds its target (which must fail), and checks
# that the compiler says what the case's first line expects ("// expect: ..."),
# in at most three error lines.
#   cmake -DBUILD_DIR=... -DTARGET=... -DSOURCE=... -P check.cmake
file(STRINGS "${SOURCE}" first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" expected "${first}")
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
                OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET}: it compiled; it must not")
endif()
string(FIND "${out}" "${expected}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${TARGET}: the compiler did not say \"${expected}\":\n${out}")
endif()
string(REGEX MATCHALL "error:" errors "${out}")
list(LENGTH errors count)
if(count GREATER 3)
  message(FATAL_ERROR "${TARGET}: ${count} error lines, more than 3:\n${out}")
endif()
message(STATUS "${TARGET}: refused with ${count} error line(s), saying \"${expected}\"")
