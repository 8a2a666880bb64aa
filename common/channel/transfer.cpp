#include "common/channel/transfer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "common/channel/archive.hpp"
#include "common/channel/record_io.hpp"

namespace csk::channel::transfer {

template <class A> void serialize(A& ar, store_offer& m) { ar(m.id, m.type, m.header); }
template <class A> void serialize(A& ar, offer& m) { ar(m.generation, m.stores, m.gates); }
template <class A> void serialize(A&, accept&) {}
template <class A> void serialize(A& ar, refuse& m) { ar(m.reason); }
template <class A> void serialize(A& ar, page& m) { ar(m.store, m.bytes); }
template <class A> void serialize(A& ar, applied& m) { ar(m.store, m.changed, m.deleted); }
template <class A> void serialize(A&, commit&) {}
template <class A> void serialize(A& ar, conn& m) { ar(m.listener, m.peer, m.unread, m.state); }
template <class A> void serialize(A& ar, done& m) { ar(m.connections); }
template <class A> void serialize(A&, serving&) {}
template <class A> void serialize(A& ar, abort& m) { ar(m.reason); }

namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint8_t magic[4] = {'C', 'S', 'K', 'X'};
constexpr std::uint8_t flag_more = 1;
constexpr std::string_view kind_names[] = {"offer", "accept", "refuse", "page",    "applied",
                                           "commit", "conn",  "done",   "serving", "abort"};
static_assert(std::size(kind_names) == std::variant_size_v<message>);
static_assert(std::variant_size_v<message> == static_cast<std::size_t>(kind::abort));

std::string errno_text(int err) { return std::generic_category().message(err); }
recv_error failed(std::string text) { return recv_error{recv_error::kind::failed, std::move(text)}; }

template <std::size_t... I>
message make_alternative(std::size_t index, std::index_sequence<I...>) {
  message m;
  (void)((index == I ? (m.emplace<I>(), true) : false) || ...);
  return m;
}

// Milliseconds left until `deadline`, for poll(); at least 0.
int left_ms(clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// One record, with `fds` attached, waiting for room until `deadline`.
result<void, std::string> send_record(int sock, const byte_buffer& rec, std::span<const int> fds,
                                      clock::time_point deadline) {
  if (fds.size() > 4) return unexpected(std::string("transfer: more than 4 fds on one message"));
  for (;;) {
    const int err = detail::send_record(sock, rec, fds, MSG_DONTWAIT);
    if (err == 0) return {};
    if (err != EAGAIN && err != EWOULDBLOCK) return unexpected("transfer: sendmsg: " + errno_text(err));
    pollfd p{sock, POLLOUT, 0};
    const int r = ::poll(&p, 1, left_ms(deadline));
    if (r < 0 && errno != EINTR) return unexpected("transfer: poll: " + errno_text(errno));
    if (r == 0 && clock::now() >= deadline) return unexpected(std::string("transfer: the peer does not read (timeout)"));
  }
}

}  // namespace

kind kind_of(const message& m) { return static_cast<kind>(m.index() + 1); }

std::string_view name_of(kind k) {
  const auto i = static_cast<std::size_t>(k);
  if (i == 0 || i > std::size(kind_names)) return "unknown";
  return kind_names[i - 1];
}

std::size_t fds_announced(const message& m) { return std::holds_alternative<conn>(m) ? 1 : 0; }

byte_buffer encode_body(const message& m) {
  byte_buffer out;
  detail::output_archive ar(out);
  std::visit([&](const auto& body) { ar(body); }, m);
  return out;
}

result<message, std::string> decode_body(kind k, bytes_view body) {
  const auto i = static_cast<std::size_t>(k);
  if (i == 0 || i > std::variant_size_v<message>) return unexpected("unknown transfer kind " + std::to_string(i));
  message m = make_alternative(i - 1, std::make_index_sequence<std::variant_size_v<message>>{});
  const std::string name(name_of(k));
  try {
    detail::input_archive ar(body);
    std::visit([&](auto& b) { ar(b); }, m);
    if (ar.remaining() != 0) return unexpected(name + ": " + std::to_string(ar.remaining()) + " bytes after the body");
  } catch (const std::exception& e) {
    return unexpected("bad " + name + " body: " + e.what());
  }
  return m;
}

std::vector<byte_buffer> encode_records(const message& m) {
  const byte_buffer body = encode_body(m);
  constexpr std::size_t room = max_record - record_header;
  std::vector<byte_buffer> out;
  std::size_t at = 0;
  do {
    const std::size_t n = std::min(room, body.size() - at);
    const bool more = at + n < body.size();
    byte_buffer rec(magic, magic + 4);
    const auto k = static_cast<std::uint16_t>(kind_of(m));
    rec.push_back(static_cast<std::uint8_t>(k));
    rec.push_back(static_cast<std::uint8_t>(k >> 8));
    rec.push_back(more ? flag_more : 0);
    rec.push_back(0);
    for (int b = 0; b < 4; ++b) rec.push_back(static_cast<std::uint8_t>(n >> (8 * b)));
    rec.insert(rec.end(), body.begin() + static_cast<std::ptrdiff_t>(at), body.begin() + static_cast<std::ptrdiff_t>(at + n));
    out.push_back(std::move(rec));
    at += n;
  } while (at < body.size());
  return out;
}

result<record_head, std::string> parse_record(bytes_view rec) {
  const std::size_t size = rec.size();
  if (size < record_header || !std::equal(magic, magic + 4, rec.begin())) {
    return unexpected("transfer: not a transfer record (" + std::to_string(size) + " bytes)");
  }
  const auto k = static_cast<std::uint16_t>(rec[4] | (rec[5] << 8));
  const std::uint8_t flags = rec[6];
  std::uint32_t len = 0;
  for (int b = 0; b < 4; ++b) len |= std::uint32_t{rec[8 + static_cast<std::size_t>(b)]} << (8 * b);
  if ((flags & ~flag_more) != 0 || rec[7] != 0) return unexpected(std::string("transfer: unknown record flags"));
  if (len != size - record_header) {
    return unexpected("transfer: part length says " + std::to_string(len) + ", the record has " +
                      std::to_string(size - record_header));
  }
  if (k == 0 || k > std::variant_size_v<message>) return unexpected("transfer: unknown kind " + std::to_string(k));
  record_head h;
  h.type = static_cast<kind>(k);
  h.more = (flags & flag_more) != 0;
  h.length = len;
  return h;
}

result<void, std::string> send(int sock, const message& m, std::chrono::milliseconds timeout,
                               std::span<const int> fds) {
  if (fds.size() != fds_announced(m)) {
    return unexpected("transfer: " + std::string(name_of(kind_of(m))) + " carries " +
                      std::to_string(fds_announced(m)) + " fds, " + std::to_string(fds.size()) + " given");
  }
  const auto deadline = clock::now() + timeout;
  const auto records = encode_records(m);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const bool last = i + 1 == records.size();
    if (auto r = send_record(sock, records[i], last ? fds : std::span<const int>{}, deadline); !r) return r;
  }
  return {};
}

result<received, recv_error> recv(int sock, std::chrono::milliseconds timeout, std::size_t max_message) {
  const auto deadline = clock::now() + timeout;
  byte_buffer rec(max_record);
  byte_buffer body;
  std::optional<std::uint16_t> kind_seen;
  std::vector<unique_fd> fds;  // owns whatever came before the record is judged
  for (;;) {
    auto got = detail::read_record(sock, rec, 4, fds);
    if (!got) {
      if (got.error() == EAGAIN || got.error() == EWOULDBLOCK) {
        pollfd p{sock, POLLIN, 0};
        const int r = ::poll(&p, 1, left_ms(deadline));
        if (r < 0 && errno != EINTR) return unexpected(failed("transfer: poll: " + errno_text(errno)));
        if (r == 0 && clock::now() >= deadline) {
          return unexpected(recv_error{recv_error::kind::timeout, "transfer: no message in time"});
        }
        continue;
      }
      if (got.error() == ECONNRESET) return unexpected(recv_error{recv_error::kind::closed, "transfer: peer reset"});
      return unexpected(failed("transfer: recvmsg: " + errno_text(got.error())));
    }
    if (got->size == 0) return unexpected(recv_error{recv_error::kind::closed, "transfer: peer closed"});
    if (got->truncated || got->control_truncated) return unexpected(failed("transfer: record truncated"));
    if (got->foreign) return unexpected(failed("transfer: unexpected control message"));
    const auto size = got->size;
    auto head = parse_record(bytes_view(rec).first(size));
    if (!head) return unexpected(failed(std::move(head.error())));
    const auto k = static_cast<std::uint16_t>(head->type);
    const std::size_t len = head->length;
    if (kind_seen && *kind_seen != k) return unexpected(failed("transfer: a message's records change kind"));
    kind_seen = k;
    if (body.size() + len > max_message) {
      return unexpected(failed("transfer: " + std::string(name_of(static_cast<kind>(k))) + " larger than " +
                               std::to_string(max_message) + " bytes"));
    }
    const bool more = head->more;
    if (more && !fds.empty()) return unexpected(failed("transfer: fds before a message's last record"));
    body.insert(body.end(), rec.begin() + record_header, rec.begin() + static_cast<std::ptrdiff_t>(size));
    if (more) continue;
    auto m = decode_body(static_cast<kind>(k), body);
    if (!m) return unexpected(failed("transfer: " + m.error()));
    if (fds.size() != fds_announced(*m)) {
      return unexpected(failed("transfer: " + std::string(name_of(static_cast<kind>(k))) + " came with " +
                               std::to_string(fds.size()) + " fds"));
    }
    return received{std::move(*m), std::move(fds)};
  }
}

}  // namespace csk::channel::transfer
