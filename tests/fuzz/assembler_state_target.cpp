// Input layout (a cluster connection's request assembler state, as it moves to a new
// worker: common/wire/cluster_assembler.hpp, layout in cluster_assembler.cpp):
//
//   byte 0    control: bits 0-1 pick the importing assembler's limits:
//               0 the defaults (64 MiB messages, 4096 pending)
//               1 max_message_size 1000
//               2 max_pending_messages 2
//               3 no message size limit
//   the rest  the exported state blob
//
// The blob is read by an independent reference parser (the layout in cluster_assembler.cpp
// and the rules import_state documents). Checks:
//   - import_state accepts it iff the reference does; a refusal has a non-empty reason and
//     leaves the assembler exactly as it was (its export is unchanged);
//   - an accepted blob exports back to its canonical form: the same fields, requests by
//     ascending session (import takes any order), and a request whose total is over this
//     assembler's max_message_size marked discarded with no data. Under no size limit and
//     with sessions already ascending that is exactly the input;
//   - the assembler keeps working: a single call gets the imported trace tag; ending each
//     imported request with an mpart_end completes it with its buffered bytes plus the
//     chunk, or refuses it with "Invalid large req", as the state says; then nothing is
//     pending and the export is the empty state.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace wire = csk::wire;
using csk::byte_buffer;
using csk::bytes_view;

bool same_bytes(bytes_view a, bytes_view b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

struct ref_request {
  std::uint32_t session = 0;
  std::uint8_t flags = 0;
  std::uint32_t address = 0;
  bytes_view name;
  bytes_view tag;
  std::uint64_t total = 0;
  std::uint64_t received = 0;
  bytes_view data;
  bool discard() const { return (flags & 16) != 0; }
};

struct ref_state {
  bool has_trace = false;
  bytes_view tag;
  std::vector<ref_request> requests;
};

struct cursor {
  bytes_view in;
  bool ok = true;
  std::uint64_t le(std::size_t n) {
    if (!ok || in.size() < n) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = v << 8 | in[i];
    in = in.subspan(n);
    return v;
  }
  bytes_view str(std::uint64_t n) {
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    const bytes_view b = in.first(static_cast<std::size_t>(n));
    in = in.subspan(static_cast<std::size_t>(n));
    return b;
  }
};

std::optional<ref_state> reference_parse(bytes_view blob, const wire::assembler_limits& limits) {
  cursor c{blob};
  ref_state s;
  const bytes_view magic = c.str(4);
  if (!c.ok || !same_bytes(magic, bytes_view(reinterpret_cast<const std::uint8_t*>("CSRA"), 4))) return std::nullopt;
  if (c.le(1) != 1) return std::nullopt;
  const std::uint64_t has_trace = c.le(1);
  s.tag = c.str(c.le(4));
  const std::uint64_t count = c.le(4);
  if (!c.ok || has_trace > 1 || count > limits.max_pending_messages) return std::nullopt;
  s.has_trace = has_trace == 1;
  for (std::uint64_t i = 0; i < count; ++i) {
    ref_request r;
    r.session = static_cast<std::uint32_t>(c.le(4));
    r.flags = static_cast<std::uint8_t>(c.le(1));
    r.address = static_cast<std::uint32_t>(c.le(4));
    r.name = c.str(c.le(4));
    r.tag = c.str(c.le(4));
    r.total = c.le(8);
    r.received = c.le(8);
    r.data = c.str(c.le(8));
    if (!c.ok || r.flags >= 64 || r.name.size() > wire::max_name_length) return std::nullopt;
    if (r.discard() && !r.data.empty()) return std::nullopt;
    if (!r.discard() && (r.data.size() != r.received || r.received > r.total)) return std::nullopt;
    if ((r.flags & (2 | 4)) != 0 && !r.discard()) return std::nullopt;  // orphan / spoiled kept
    for (const auto& other : s.requests) {
      if (other.session == r.session) return std::nullopt;
    }
    if (!r.discard() && r.total > limits.max_message_size) {
      r.flags |= 16;  // this assembler's limit
      r.data = {};
    }
    s.requests.push_back(r);
  }
  if (!c.in.empty()) return std::nullopt;
  std::sort(s.requests.begin(), s.requests.end(),
            [](const ref_request& a, const ref_request& b) { return a.session < b.session; });
  return s;
}

void put(byte_buffer& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put(byte_buffer& out, bytes_view b, std::size_t n) {
  put(out, b.size(), n);
  out.insert(out.end(), b.begin(), b.end());
}

byte_buffer canonical(const ref_state& s) {
  byte_buffer out{'C', 'S', 'R', 'A', 1};
  out.push_back(s.has_trace ? 1 : 0);
  put(out, s.tag, 4);
  put(out, s.requests.size(), 4);
  for (const auto& r : s.requests) {
    put(out, r.session, 4);
    out.push_back(r.flags);
    put(out, r.address, 4);
    put(out, r.name, 4);
    put(out, r.tag, 4);
    put(out, r.total, 8);
    put(out, r.received, 8);
    put(out, r.data, 8);
  }
  return out;
}

std::string_view chars(bytes_view b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

wire::request_frame frame(wire::request_type type, std::uint32_t session, bytes_view data) {
  wire::request_frame f;
  f.type = type;
  f.session = session;
  f.address = 5;
  f.data = data;
  return f;
}

// Ends every imported request and checks what comes out; the assembler is empty afterwards.
void drive(wire::request_assembler& a, const ref_state& s) {
  static const std::uint8_t x[] = {'x'};
  auto ev = a.push(frame(wire::request_type::req_addr, 1, x));
  CSK_FUZZ_CHECK(ev.what == wire::request_event::kind::request);
  CSK_FUZZ_CHECK(ev.message.has_trace == s.has_trace && ev.message.trace_tag == chars(s.tag));
  byte_buffer chunk;
  for (const auto& r : s.requests) {
    const bool keeps = !r.discard();
    const std::uint64_t c = keeps && r.total - r.received <= 64 ? r.total - r.received : 1;
    chunk.assign(static_cast<std::size_t>(c), 0x5a);
    ev = a.push(frame(wire::request_type::mpart_end, r.session, chunk));
    if (keeps && r.received + c == r.total) {
      CSK_FUZZ_CHECK(ev.what == wire::request_event::kind::request);
      const auto& m = ev.message;
      CSK_FUZZ_CHECK(m.session == r.session && m.multipart);
      CSK_FUZZ_CHECK(m.push == ((r.flags & 1) != 0) && m.to.by_name == ((r.flags & 32) != 0));
      CSK_FUZZ_CHECK(m.to.address == r.address && m.to.name == chars(r.name));
      CSK_FUZZ_CHECK(m.has_trace == ((r.flags & 8) != 0) && m.trace_tag == chars(r.tag));
      CSK_FUZZ_CHECK(m.payload.size() == r.data.size() + chunk.size());
      CSK_FUZZ_CHECK(std::equal(r.data.begin(), r.data.end(), m.payload.begin()));
      CSK_FUZZ_CHECK(std::equal(chunk.begin(), chunk.end(), m.payload.begin() + static_cast<std::ptrdiff_t>(r.data.size())));
    } else {
      CSK_FUZZ_CHECK(ev.what == wire::request_event::kind::reply_error);
      CSK_FUZZ_CHECK(ev.session == r.session && ev.error_text == wire::error_invalid_large_req);
      CSK_FUZZ_CHECK(!ev.reason.empty());
    }
  }
  CSK_FUZZ_CHECK(a.pending() == 0);
  byte_buffer empty;
  a.export_state(empty);
  CSK_FUZZ_CHECK(canonical(ref_state{}) == empty);
}

}  // namespace

int csk_fuzz_assembler_state(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  wire::assembler_limits limits;
  switch (data[0] & 3) {
    case 1: limits.max_message_size = 1000; break;
    case 2: limits.max_pending_messages = 2; break;
    case 3: limits.max_message_size = std::numeric_limits<std::size_t>::max(); break;
    default: break;
  }
  const bytes_view blob(data + 1, size - 1);

  // Some state of its own first, which a refused import must leave alone.
  wire::request_assembler a(limits);
  static const std::uint8_t tag[] = {'t', 'r'};
  static const std::uint8_t part[] = {1, 2, 3};
  (void)a.push(frame(wire::request_type::trace, 0, tag));
  auto header = frame(wire::request_type::mreq_addr, 7, {});
  header.total = 10;
  (void)a.push(header);
  (void)a.push(frame(wire::request_type::mpart, 7, part));
  (void)a.push(frame(wire::request_type::trace, 0, tag));
  byte_buffer before;
  a.export_state(before);

  const auto want = reference_parse(blob, limits);
  auto r = a.import_state(blob);
  CSK_FUZZ_CHECK(r.has_value() == want.has_value());
  byte_buffer after;
  a.export_state(after);
  if (!r) {
    CSK_FUZZ_CHECK(!r.error().empty());
    CSK_FUZZ_CHECK(after == before);
    CSK_FUZZ_CHECK(a.pending() == 1);
    return 0;
  }
  const byte_buffer expect = canonical(*want);
  CSK_FUZZ_CHECK(after == expect);
  CSK_FUZZ_CHECK(a.pending() == want->requests.size());
  // Canonical state imports to itself: export(import(export)) == export.
  wire::request_assembler again(limits);
  CSK_FUZZ_CHECK(again.import_state(after).has_value());
  byte_buffer twice;
  again.export_state(twice);
  CSK_FUZZ_CHECK(twice == after);
  drive(a, *want);
  return 0;
}
