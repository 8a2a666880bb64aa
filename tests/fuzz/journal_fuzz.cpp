// libFuzzer entry point: entity journal files (body in journal_target.cpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return csk_fuzz_journal(data, size);
}
