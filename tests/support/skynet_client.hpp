#pragma once
// A raw skynet cluster-protocol peer on one blocking TCP connection, for tests and test
// tools (header-only; link csk::wire): what a Lua node's clusterd sender does, minus the
// coroutines. It writes request bytes (a call's frames whole, or only some of them, to
// leave a multi-part request half sent), and reads frames, whole answers (single or
// multi-part) or whole responses through wire::response_assembler, each with a deadline
// (poll(), never a fixed sleep). Every failure is reported, never retried.
//
// Wire layout (skynet's cluster protocol): frames [len_hi len_lo] body; a request body
// carries its target and session, an answer's its session and type (ok / error /
// multi_begin, multi_part..., multi_end); common/wire/cluster_codec.hpp has the details.
//
// Thread rules: one owner thread per client; nothing here locks.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "tests/support/raw_socket.hpp"

namespace csk::test {

/// Reads are bounded by their own deadlines (poll), writes by a 10 s send timeout.
inline socket_options skynet_socket_options() {
  socket_options o;
  o.recv_timeout = std::chrono::seconds(0);
  return o;
}

/// The bytes of a call (all its frames) to `to` with `session`; nullopt if the arguments
/// do not pack or the name does not encode.
inline std::optional<byte_buffer> encode_call(const wire::target& to, std::uint32_t session,
                                              const std::vector<lua_value>& args) {
  auto payload = seri::pack(args);
  if (!payload) return std::nullopt;
  byte_buffer out;
  if (!wire::encode_request(to, session, false, *payload, out)) return std::nullopt;
  return out;
}

class skynet_client {
 public:
  enum class got { frame, closed, timeout };

  /// One whole answer to a call (read_answer).
  struct answer {
    bool ok = false;
    std::vector<lua_value> values;
    std::string error;  ///< the error text, or what went wrong with the connection
    bool closed = false;  ///< the connection is unusable
  };
  /// One whole response as the response assembler gives it (next_response).
  struct reply {
    wire::response_message msg;
    int frames = 0;              ///< frames this session's message took
    wire::response_type last{};  ///< the type of its last frame
  };

  /// A client of 127.0.0.1:port; !connected() if the connect failed.
  explicit skynet_client(std::uint16_t port, const socket_options& o = skynet_socket_options())
      : sock_(raw_socket::try_connect(port, o)) {}
  /// The peer on an accepted (or otherwise connected) socket; small frames go out at once.
  explicit skynet_client(raw_socket s) : sock_(std::move(s)) {
    const int one = 1;
    if (sock_.valid()) ::setsockopt(sock_.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  bool connected() const { return sock_.valid(); }
  /// The client's own port (how the node's metrics and logs know this connection).
  std::uint16_t local_port() const { return sock_.port(); }
  /// Received bytes that do not yet form a whole frame.
  std::size_t buffered() const { return reader_.buffered(); }
  /// Responses next_response() has begun and not finished (multi-part ones).
  std::size_t pending() const { return assembler_.pending(); }
  /// Closes the connection (the peer sees EOF).
  void shut() { sock_.close(); }

  /// Writes all of `b`, `piece` bytes per send() (0 = as few sends as the kernel takes).
  bool write(bytes_view b, std::size_t piece = 0) { return sock_.valid() && send_all(sock_.fd(), b, piece); }

  /// Sends the frames of a call to `to`: all of them, or only frames [skip, skip + frames).
  bool send_call(std::uint32_t session, const std::string& to, const std::vector<lua_value>& args,
                 std::size_t frames = SIZE_MAX, std::size_t skip = 0) {
    auto out = encode_call(wire::target::named(to), session, args);
    if (!out) return false;
    std::size_t at = 0, begin = 0, end = out->size();
    for (std::size_t i = 0; at < out->size(); ++i) {
      if (i == skip) begin = at;
      at += 2 + frame_length(out->data() + at);
      if (frames != SIZE_MAX && i + 1 == skip + frames) {
        end = at;
        break;
      }
    }
    return write(bytes_view(out->data() + begin, end - begin));
  }

  /// The next whole frame body; `closed` on EOF or reset, `timeout` at the deadline.
  got next_frame(std::chrono::steady_clock::time_point deadline, byte_buffer& body) {
    for (;;) {
      if (auto b = reader_.next()) {
        body.assign(b->begin(), b->end());
        return got::frame;
      }
      if (closed_ || !sock_.valid()) return got::closed;
      if (!wait_readable(sock_.fd(), deadline)) return got::timeout;
      std::uint8_t buf[65536];
      const ssize_t n = ::recv(sock_.fd(), buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed_ = true;  // EOF, or a reset from a peer that aborted
        continue;
      }
      reader_.feed(bytes_view(buf, static_cast<std::size_t>(n)));
    }
  }

  /// True if the peer closes the connection before the deadline and sent no frame first.
  bool closed_by_peer(std::chrono::steady_clock::time_point deadline, std::string& why) {
    byte_buffer body;
    switch (next_frame(deadline, body)) {
      case got::closed: return true;
      case got::timeout: why = "still open at the deadline"; return false;
      case got::frame: why = "a frame arrived instead: " + to_hex(body); return false;
    }
    return false;
  }

  /// Reads until the whole answer to `session` (single or multi-part) is in. An answer for
  /// another session, a bad frame or payload, EOF and the deadline leave it `closed`.
  answer read_answer(std::uint32_t session, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    byte_buffer multi, body;
    for (;;) {
      switch (next_frame(deadline, body)) {
        case got::closed: return {false, {}, "connection closed", true};
        case got::timeout: return {false, {}, "no answer in time", true};
        case got::frame: break;
      }
      auto f = wire::decode_response_frame(body);
      if (!f) return {false, {}, "bad response frame", true};
      if (f->session != session) return {false, {}, "answer for another session " + std::to_string(f->session), true};
      switch (f->type) {
        case wire::response_type::error: return {false, {}, std::string(as_chars(f->data))};
        case wire::response_type::multi_begin: multi.clear(); break;
        case wire::response_type::multi_part: multi.insert(multi.end(), f->data.begin(), f->data.end()); break;
        case wire::response_type::multi_end:
        case wire::response_type::ok: {
          byte_buffer all = std::move(multi);
          all.insert(all.end(), f->data.begin(), f->data.end());
          auto v = seri::unpack(all);
          if (!v) return {false, {}, "bad payload", true};
          return {true, std::move(*v), ""};
        }
      }
    }
  }

  /// A whole call on a fresh session: its frames, then its answer.
  answer call(const std::string& to, const std::vector<lua_value>& args,
              std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const std::uint32_t s = next_session_++;
    if (!send_call(s, to, args)) return {false, {}, "send failed", true};
    return read_answer(s, limit);
  }
  /// A session number for a call sent by hand (send_call + read_answer).
  std::uint32_t take_session() { return next_session_++; }

  /// The next whole response of any session, as the response assembler completes it;
  /// nullopt with `why` on EOF, the deadline, a malformed frame or an assembler failure.
  std::optional<reply> next_response(std::chrono::steady_clock::time_point deadline, std::string& why) {
    byte_buffer body;
    for (;;) {
      switch (next_frame(deadline, body)) {
        case got::closed: why = "the node closed the connection"; return std::nullopt;
        case got::timeout: why = "no response within the deadline"; return std::nullopt;
        case got::frame: break;
      }
      auto f = wire::decode_response_frame(body);
      if (!f) {
        why = "malformed response frame: " + f.error().message();
        return std::nullopt;
      }
      ++frames_[f->session];
      auto ev = assembler_.push(*f);
      if (ev.what == wire::response_event::kind::response) {
        reply r{std::move(ev.message), frames_[f->session], f->type};
        frames_.erase(r.msg.session);
        return r;
      }
      if (ev.what != wire::response_event::kind::none) {
        why = "response assembler: " + ev.reason;
        return std::nullopt;
      }
    }
  }

 private:
  raw_socket sock_;
  bool closed_ = false;  ///< EOF or reset seen: frames already buffered are still read
  wire::frame_reader reader_;
  wire::response_assembler assembler_;
  std::map<std::uint32_t, int> frames_;  ///< frames so far of each response being assembled
  std::uint32_t next_session_ = 1;
};

}  // namespace csk::test
