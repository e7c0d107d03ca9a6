# Helpers shared by every module: warnings, sanitizers, module libraries, tests.

set(STRATA_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter -Wshadow=local -Wno-missing-field-initializers -Wno-maybe-uninitialized)
if(STRATA_WERROR)
  list(APPEND STRATA_WARNINGS -Werror)
endif()
set(STRATA_ARCH_FLAGS -mavx2 -mfma -mf16c)
if(STRATA_NATIVE)
  set(STRATA_ARCH_FLAGS -march=native)
endif()

if(STRATA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# strata_module(NAME SOURCES ... DEPS ...): one library per module. The DEPS list is the
# module's allowed dependencies (docs/architecture.md); anything else fails to link/include.
function(strata_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PUBLIC_LIBS" ${ARGN})
  add_library(strata_${name} STATIC ${M_SOURCES})
  target_include_directories(strata_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(strata_${name} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${STRATA_WARNINGS} ${STRATA_ARCH_FLAGS}>)
  set(_deps "")
  foreach(d ${M_DEPS})
    list(APPEND _deps strata_${d})
  endforeach()
  target_link_libraries(strata_${name} PUBLIC ${_deps} ${M_PUBLIC_LIBS})
endfunction()

# strata_test(NAME SOURCES ... DEPS ... LABELS ...): a GoogleTest binary with ctest labels.
function(strata_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;DEPS;LABELS;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE ${STRATA_WARNINGS} ${STRATA_ARCH_FLAGS})
  set(_deps "")
  foreach(d ${T_DEPS})
    list(APPEND _deps strata_${d})
  endforeach()
  target_link_libraries(${name} PRIVATE ${_deps} ${T_LIBS} GTest::gtest_main)
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()

# Fuzzing: instrument every library for coverage (clang), not only the fuzz targets.
if(STRATA_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
