// libFuzzer entry point: transfer socket bodies and records (body in transfer_target.cpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return csk_fuzz_transfer(data, size);
}
