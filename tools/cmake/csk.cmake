# Project-wide helpers: one INTERFACE target carries warnings, one carries the
# sanitizers; csk_add_test registers every gtest case with ctest.
include_guard(GLOBAL)

add_library(csk_warnings INTERFACE)
target_compile_options(csk_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wold-style-cast -Woverloaded-virtual -Wnon-virtual-dtor
  $<$<BOOL:${CSK_WERROR}>:-Werror>)

add_library(csk_sanitizers INTERFACE)
if(CSK_SANITIZERS)
  target_compile_options(csk_sanitizers INTERFACE
    -fsanitize=${CSK_SANITIZERS} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(csk_sanitizers INTERFACE -fsanitize=${CSK_SANITIZERS})
endif()

# Every project target links csk_flags: warnings on our own code, sanitizers everywhere.
add_library(csk_flags INTERFACE)
target_link_libraries(csk_flags INTERFACE csk_warnings csk_sanitizers)

# csk_add_test(NAME n SOURCES ... LIBS ... LABEL unit [ENVIRONMENT ...])
function(csk_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL" "SOURCES;LIBS;ENVIRONMENT" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main csk_flags)
  target_compile_definitions(${T_NAME} PRIVATE
    CSK_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  include(GoogleTest)
  gtest_discover_tests(${T_NAME}
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${T_LABEL}" TIMEOUT 300 ENVIRONMENT "${T_ENVIRONMENT}")
endfunction()
