// Input layout (the transfer socket, common/channel/transfer.hpp):
//
//   byte 0 < 0x80   one message body: kind = byte 0 (0..127, so unknown kinds too), body =
//                   the rest, straight to decode_body
//   byte 0 >= 0x80  a record stream as the SOCK_SEQPACKET socket delivers it: max_message =
//                   (byte 0 & 0x7f) * 16 bytes (0x7f: no limit), then records, each behind
//                   a u16 little-endian length (cut short at the end of the input)
//
// Checks:
//   - decode_body(k, b) refuses with a non-empty error, or returns a message of kind k
//     whose encode_body is exactly b: the body format (cereal through the channel's
//     bounded archive: fixed-width little-endian integers, u64-length strings and byte
//     strings, nothing for empty messages, no trailing bytes) has one encoding per message.
//     encode_records of it gives records that parse_record accepts, of kind k, each at most
//     max_record bytes, "more" on all but the last, whose parts put together are b.
//   - parse_record on every record against an independent reading of the header layout,
//     error texts included.
//   - the record stream is written into a real socketpair and read back with recv (timeout
//     0, after the writer shut down): every message, error text and the final "closed" must
//     match a model of recv built on parse_record and decode_body (kind changes, the size
//     limit, no fds: a conn without its fd is refused, a zero-length record reads as closed).

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/channel/transfer.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace tx = csk::channel::transfer;
using csk::byte_buffer;
using csk::bytes_view;

bool same_bytes(bytes_view a, bytes_view b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

void check_body(std::uint16_t k, bytes_view body) {
  auto m = tx::decode_body(static_cast<tx::kind>(k), body);
  if (!m) {
    CSK_FUZZ_CHECK(!m.error().empty());
    return;
  }
  CSK_FUZZ_CHECK(k >= 1 && k <= std::variant_size_v<tx::message>);
  CSK_FUZZ_CHECK(tx::kind_of(*m) == static_cast<tx::kind>(k));
  const byte_buffer again = tx::encode_body(*m);
  CSK_FUZZ_CHECK(same_bytes(again, body));
  const auto records = tx::encode_records(*m);
  CSK_FUZZ_CHECK(!records.empty());
  byte_buffer joined;
  for (std::size_t i = 0; i < records.size(); ++i) {
    CSK_FUZZ_CHECK(records[i].size() <= tx::max_record);
    auto h = tx::parse_record(records[i]);
    CSK_FUZZ_CHECK(h && h->type == static_cast<tx::kind>(k) && h->more == (i + 1 < records.size()));
    CSK_FUZZ_CHECK(h->length + tx::record_header == records[i].size());
    CSK_FUZZ_CHECK(h->length > 0 || records.size() == 1);  // no empty part but an empty body's
    joined.insert(joined.end(), records[i].begin() + tx::record_header, records[i].end());
  }
  CSK_FUZZ_CHECK(same_bytes(joined, body));
}

// parse_record's verdict from the layout in transfer.hpp, read independently.
std::optional<std::string> reference_record_error(bytes_view rec) {
  const std::size_t n = rec.size();
  if (n < 12 || rec[0] != 'C' || rec[1] != 'S' || rec[2] != 'K' || rec[3] != 'X') {
    return "transfer: not a transfer record (" + std::to_string(n) + " bytes)";
  }
  if (rec[6] > 1 || rec[7] != 0) return std::string("transfer: unknown record flags");
  const std::uint64_t len = std::uint64_t{rec[8]} | std::uint64_t{rec[9]} << 8 | std::uint64_t{rec[10]} << 16 |
                            std::uint64_t{rec[11]} << 24;
  if (len != n - 12) {
    return "transfer: part length says " + std::to_string(len) + ", the record has " + std::to_string(n - 12);
  }
  const unsigned k = rec[4] + 256u * rec[5];
  if (k < 1 || k > 10) return "transfer: unknown kind " + std::to_string(k);
  return std::nullopt;
}

// What one recv() returns, as the model and the real socket see it.
struct outcome {
  enum class what : std::uint8_t { message, failed, closed } w = what::closed;
  std::string text;      // failed
  byte_buffer encoded;   // message: encode_body of it
  tx::kind k = tx::kind::offer;
};

std::vector<outcome> model(const std::vector<bytes_view>& records, std::size_t max_message) {
  std::vector<outcome> out;
  std::size_t i = 0;
  const auto fail = [&](std::string text) { out.push_back({outcome::what::failed, std::move(text), {}, {}}); };
  while (i < records.size()) {
    byte_buffer body;
    std::optional<tx::kind> seen;
    for (;;) {
      if (i == records.size() || records[i].empty()) {
        out.push_back({});  // closed
        return out;
      }
      const bytes_view rec = records[i++];
      auto h = tx::parse_record(rec);
      const auto want = reference_record_error(rec);
      CSK_FUZZ_CHECK(h.has_value() == !want.has_value());
      if (!h) {
        CSK_FUZZ_CHECK(h.error() == *want);
        fail(h.error());
        break;
      }
      CSK_FUZZ_CHECK(h->length == rec.size() - tx::record_header);
      CSK_FUZZ_CHECK(h->more == (rec[6] == 1));
      CSK_FUZZ_CHECK(static_cast<unsigned>(h->type) == rec[4] + 256u * rec[5]);
      if (seen && *seen != h->type) {
        fail("transfer: a message's records change kind");
        break;
      }
      seen = h->type;
      if (body.size() + h->length > max_message) {
        fail("transfer: " + std::string(tx::name_of(h->type)) + " larger than " + std::to_string(max_message) +
             " bytes");
        break;
      }
      body.insert(body.end(), rec.begin() + tx::record_header, rec.end());
      if (h->more) continue;
      check_body(static_cast<std::uint16_t>(h->type), body);
      auto m = tx::decode_body(h->type, body);
      if (!m) {
        fail("transfer: " + m.error());
      } else if (tx::fds_announced(*m) != 0) {
        fail("transfer: " + std::string(tx::name_of(h->type)) + " came with 0 fds");
      } else {
        out.push_back({outcome::what::message, {}, tx::encode_body(*m), h->type});
      }
      break;
    }
  }
  out.push_back({});
  return out;
}

// The same records through a real socketpair and recv. Empty if the socket would not take
// them all without a reader (then only the model's checks ran).
std::vector<outcome> over_socket(const std::vector<bytes_view>& records, std::size_t max_message) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return {};
  std::vector<outcome> out;
  bool sent = true;
  for (const bytes_view rec : records) {
    if (::send(sv[1], rec.data(), rec.size(), MSG_DONTWAIT | MSG_NOSIGNAL) != static_cast<ssize_t>(rec.size())) {
      sent = false;
      break;
    }
  }
  ::shutdown(sv[1], SHUT_WR);
  while (sent) {
    auto r = tx::recv(sv[0], std::chrono::milliseconds(0), max_message);
    if (r) {
      out.push_back({outcome::what::message, {}, tx::encode_body(r->msg), tx::kind_of(r->msg)});
      CSK_FUZZ_CHECK(r->fds.empty());
      continue;
    }
    CSK_FUZZ_CHECK(r.error().why != csk::channel::recv_error::kind::timeout);
    if (r.error().why == csk::channel::recv_error::kind::closed) {
      out.push_back({});
      break;
    }
    out.push_back({outcome::what::failed, r.error().text, {}, {}});
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return out;
}

}  // namespace

int csk_fuzz_transfer(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bytes_view in(data, size);
  if (data[0] < 0x80) {
    check_body(data[0], in.subspan(1));
    return 0;
  }
  const unsigned limit = data[0] & 0x7fu;
  const std::size_t max_message = limit == 0x7f ? std::numeric_limits<std::size_t>::max() : limit * std::size_t{16};
  std::vector<bytes_view> records;
  for (bytes_view rest = in.subspan(1); !rest.empty();) {
    std::size_t n = rest[0];
    if (rest.size() >= 2) n |= std::size_t{rest[1]} << 8;
    rest = rest.subspan(std::min<std::size_t>(rest.size(), 2));
    n = std::min(n, rest.size());
    records.push_back(rest.first(n));
    rest = rest.subspan(n);
  }
  const auto expected = model(records, max_message);
  // Beyond this the socket's queue may fill up before anyone reads.
  if (records.size() > 64) return 0;
  const auto got = over_socket(records, max_message);
  if (got.empty()) return 0;
  CSK_FUZZ_CHECK(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CSK_FUZZ_CHECK(got[i].w == expected[i].w);
    CSK_FUZZ_CHECK(got[i].text == expected[i].text);
    CSK_FUZZ_CHECK(got[i].k == expected[i].k);
    CSK_FUZZ_CHECK(got[i].encoded == expected[i].encoded);
  }
  return 0;
}
