#pragma once
// SHA-1 digest, used only to print and check the value notation of long strings
// ({"sha1": ...} in the vectors). Not for security.

#include <string>

#include "common/base/bytes.hpp"

namespace csk::tools {

/// Lowercase hex SHA-1 of `data`.
std::string sha1_hex(bytes_view data);

}  // namespace csk::tools
