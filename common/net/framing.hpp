#pragma once
// Framing hooks: how a connection finds whole messages at the front of its receive
// buffer. Pure functions on bytes; the connection decides what an error means (it
// closes that one connection).

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "common/base/bytes.hpp"

namespace csk::net {

/// What an unpack hook says about the front of the receive buffer.
///
/// - `message`: the front holds one whole message of `header + length` bytes; the body
///   handed to on_message is the `length` bytes after the `header` bytes. The total must
///   be at least 1 and at most the bytes buffered, and at most conn_options::max_message.
/// - `need_more`: no whole message yet. If the hook already knows the size (a length
///   prefix has arrived) it sets `header` and `length` too: the connection then checks
///   the size against max_message before buffering anything more, and makes room for it.
///   With `header + length == 0` (size unknown) the connection only checks that the
///   bytes buffered stay under max_message.
/// - `error`: the stream is bad; the connection closes with `error` as the reason.
struct unpack_result {
  enum class status : std::uint8_t { need_more, message, error };
  status what = status::need_more;
  std::size_t header = 0;
  std::size_t length = 0;
  std::string error;

  static unpack_result need_more(std::size_t header = 0, std::size_t length = 0) {
    return {status::need_more, header, length, {}};
  }
  static unpack_result message(std::size_t header, std::size_t length) {
    return {status::message, header, length, {}};
  }
  static unpack_result failed(std::string why) { return {status::error, 0, 0, std::move(why)}; }
};

inline constexpr std::size_t length16_header = 2;
inline constexpr std::size_t length16_max_body = 0xffff;

/// Default framing, skynet's gate and cluster framing:
///   len : u16 BIG-endian | body : len bytes      (len may be 0)
/// need_more reports header 2 and the length as soon as both length bytes are there.
unpack_result unpack_length16(bytes_view buffered) noexcept;

}  // namespace csk::net
