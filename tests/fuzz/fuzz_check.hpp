#pragma once
// Invariant checks for the fuzz targets. Unlike assert() they stay on in release
// builds (the fuzz preset is RelWithDebInfo, which defines NDEBUG).

#include <cstdio>

/// Set by the corpus replay test so that a failure names the input file.
inline const char* csk_fuzz_current_input = nullptr;

[[noreturn]] inline void csk_fuzz_fail(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\n", what, file, line);
  if (csk_fuzz_current_input != nullptr) std::fprintf(stderr, "input: %s\n", csk_fuzz_current_input);
  std::fflush(stderr);
  __builtin_trap();
}

#define CSK_FUZZ_CHECK(cond) \
  do {                       \
    if (!(cond)) csk_fuzz_fail(#cond, __FILE__, __LINE__); \
  } while (0)
