#include "common/base/random_key.hpp"

#include <cstdint>
#include <cstdio>
#include <random>

namespace csk {

std::string random_key(std::string_view prefix) {
  std::random_device rd;
  const std::uint64_t n = (std::uint64_t{rd()} << 32) ^ rd();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(n));
  return std::string(prefix) + hex;
}

}  // namespace csk
