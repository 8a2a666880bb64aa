#include "common/net/framing.hpp"

namespace csk::net {

unpack_result unpack_length16(bytes_view buffered) noexcept {
  if (buffered.size() < length16_header) return unpack_result::need_more();
  const std::size_t len = (std::size_t{buffered[0]} << 8) | std::size_t{buffered[1]};
  if (buffered.size() - length16_header < len) return unpack_result::need_more(length16_header, len);
  return unpack_result::message(length16_header, len);
}

}  // namespace csk::net
