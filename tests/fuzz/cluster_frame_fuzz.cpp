// libFuzzer entry point: cluster frame streams (body and input layout in cluster_target.cpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return csk_fuzz_cluster(data, size);
}
