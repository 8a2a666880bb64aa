// libFuzzer entry point: entity snapshots (body in entity_target.cpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return csk_fuzz_entity(data, size);
}
