#pragma once
// The dissector's logic, apart from its command line: cluster byte streams and
// seri buffers to JSON in the vectors' `meaning` vocabulary, and back.

#include <optional>
#include <string>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::tools {

enum class direction { request, response };

struct dissect_error {
  std::size_t offset = 0;  ///< byte offset in the input
  std::string what;
  std::string message() const { return "byte " + std::to_string(offset) + ": " + what; }
};

struct stream_dissection {
  std::vector<json> messages;         ///< in completion order
  std::optional<dissect_error> error; ///< first malformed thing; messages before it are kept
};

/// A byte stream of cluster frames -> one JSON object per whole message:
/// {"frames":[...], "session", "push", "name"|"address", "payload_len", "values", ...}
/// for requests; {"frames":[...], "session", "ok", "payload_len", "values"|"error_text"}
/// for responses. Frames carry the vectors' fields (offset, frame_len, type, kind, ...).
stream_dissection dissect_stream(bytes_view in, direction dir);

/// A skynet.pack buffer -> {"values":[...]}.
result<json, dissect_error> dissect_seri(bytes_view in);

/// The inverse of dissect_stream for one message object (frames are ignored;
/// "values" or "payload_hex" gives the payload). Appends the message's frames.
result<void, std::string> encode_message(const json& msg, direction dir, byte_buffer& out);

/// {"values":[...]} (or a bare array) -> skynet.pack bytes.
result<void, std::string> encode_seri(const json& j, byte_buffer& out);

}  // namespace csk::tools
