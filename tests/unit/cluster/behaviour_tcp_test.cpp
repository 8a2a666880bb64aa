// behaviour.jsonl over real TCP: every row of the file replayed on loopback against the
// real cluster code (cluster::node with its agents and senders on csk::net), with a
// scripted raw-socket peer in the role the capture's Python tools played.
//
// rx_* rows (direction "request": bytes a Python probe sent to a skynet SERVER node).
//   A node with the lab services (echo at 0x0a, "@echo", ".echo") listens on
//   127.0.0.1:0. A raw socket writes the row's bytes (rx_py_frame_split_byte_by_byte:
//   one byte per send, TCP_NODELAY) and reads the node's answers; each must match the
//   row's `skynet_responses` in order: session, OK / ERROR / multi-part, error text,
//   payload size, values, frame count (and the echoed payload byte for byte where the
//   row says `echo_identical`). Then an echo call on the same connection must be the
//   next thing answered: that proves "no reply, connection stays open". An idle second
//   connection, opened before the row, must still be served afterwards.
//
// tx_* rows (direction "response": bytes a scripted server sent back to a skynet CLIENT
//   node). The test listens on 127.0.0.1:0, the client node's table points "fake" at it
//   (node::reload), the call of the row's `lua` field is made with cluster::node::call,
//   the request the node writes is read and checked, and the row's bytes are written
//   back. The caller's outcome must be the row's: values, or a failure (with the ERROR
//   frame's text, or the unpack error), a call that fails at once (long before its 60 s
//   timeout) when the connection drops or a malformed frame makes the node close it,
//   and the next call on a new connection (accepted connections are counted).
//   Sessions, two ways:
//     - TxRowAlone/<row>: each row on a fresh node. The node's first call has session 1,
//       so the scripted bytes are rewritten: every non-zero session s in them becomes
//       s - row_session + actual (the bogus session 1004 of tx_unknown_session_first
//       stays "1000 above the call's"; session 0 stays 0). After the row an echo call
//       shows the connection survived, or was replaced when it had to be.
//     - TxCapture.AllRowsInCaptureOrderOnOneNode: the rows in file order on one node, as
//       the capture ran them. The node's session counter then yields the row's sessions
//       (1..18, drops and failures included) and the bytes go out unchanged: the test
//       checks that the session the node used is the row's. This is also what gives
//       tx_echo_still_connected ("the connection survived all of the above") its meaning.
//
// conn_server_restart_and_reload (a client-side timeline, though its direction says
//   "request") is replayed by BehaviourTcpConn.ServerRestartAndReload.
//
// Deliberate differences from skynet, asserted exactly as this implementation
// documents them (services/cluster/agent.hpp, docs/protocol.md section 9):
//   - rx_py_dotname_and_bare_name, rx_name_length_zero: a call to a bare or empty name
//     is answered ERROR "Invalid name" (skynet never answers it);
//   - rx_call_with_invalid_seri_payload: answered ERROR with the unpack error (skynet
//     never answers);
//   - tx_multi_size_mismatch: the call fails with "multi-part response size mismatch"
//     (skynet's caller returns zero values);
//   - conn_server_restart_and_reload step echo_node_back: a call made right after the
//     reload succeeds, because the request waits in the sender while it connects (skynet
//     fails it: its reconnect is asynchronous).
// rx_py_trace_then_call's "tag appears in the receiver's trace log": the node's agent logs
// skynet's trace line "<TRACE tag> ns tracecall begin" (at info); the test captures the
// logs for rows with a tag.
//
// No sleeps: every wait is poll() on a socket or a future, with a deadline.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "common/log/log.hpp"
#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "tests/support/cluster_node.hpp"
#include "tests/support/skynet_client.hpp"
#include "tests/support/vectors.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using actor::values;
using test::json;
using test::vector_entry;
using wire::target;

/// How long any single network event may take before the test calls it missing.
constexpr auto io_wait = 10s;
/// Call timeout of the tx calls: a failure must come long before it.
constexpr auto tx_call_timeout = 60000ms;

// ------------------------------------------------------------------ the rows --

const std::vector<vector_entry>& rows() {
  static const std::vector<vector_entry> all = [] {
    try {
      return test::load_vectors("behaviour.jsonl");
    } catch (const std::exception&) {
      return std::vector<vector_entry>{};  // BehaviourTcpRows.EveryRowIsReplayed fails then
    }
  }();
  return all;
}

const vector_entry& row(const std::string& name) {
  for (const auto& v : rows()) {
    if (v.name == name) return v;
  }
  throw std::runtime_error("no row " + name);
}

std::vector<std::string> row_names(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& v : rows()) {
    if (v.name.rfind(prefix, 0) == 0) out.push_back(v.name);
  }
  return out;
}

std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void put_le32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// Frame bodies of a byte string (whole frames only).
std::vector<byte_buffer> frame_bodies(bytes_view bytes) {
  wire::frame_reader r;
  r.feed(bytes);
  std::vector<byte_buffer> out;
  while (auto b = r.next()) out.emplace_back(b->begin(), b->end());
  return out;
}

/// Every whole request in a request byte string (as the node's agent sees them).
std::map<std::uint32_t, byte_buffer> request_payloads(bytes_view bytes) {
  std::map<std::uint32_t, byte_buffer> out;
  wire::request_assembler a;
  for (const auto& body : frame_bodies(bytes)) {
    auto f = wire::decode_request_frame(body);
    if (!f) continue;
    auto ev = a.push(*f);
    if (ev.what == wire::request_event::kind::request) out[ev.message.session] = ev.message.payload;
  }
  return out;
}

/// The tags of the trace frames in a request byte string.
std::vector<std::string> trace_tags(bytes_view bytes) {
  std::vector<std::string> out;
  for (const auto& body : frame_bodies(bytes)) {
    auto f = wire::decode_request_frame(body);
    if (f && f->type == wire::request_type::trace) out.emplace_back(as_chars(f->data));
  }
  return out;
}

/// Captures the logs, the "cluster" logger at debug level.
class cluster_debug_log {
 public:
  cluster_debug_log() : logger_(csk::logger("cluster")), level_(logger_->level()) {
    logger_->set_level(spdlog::level::debug);
  }
  ~cluster_debug_log() { logger_->set_level(level_); }
  cluster_debug_log(const cluster_debug_log&) = delete;
  cluster_debug_log& operator=(const cluster_debug_log&) = delete;
  const capture_logs& logs() const { return logs_; }

 private:
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum level_;
  capture_logs logs_;
};

byte_buffer request_bytes(const target& to, std::uint32_t session, const values& args) {
  auto out = test::encode_call(to, session, args);
  EXPECT_TRUE(out.has_value());
  return out ? std::move(*out) : byte_buffer{};
}

// ------------------------------------------------------------- raw sockets --

/// One end of a TCP connection, driven by the test thread (tests/support): blocking
/// writes (bounded by SO_SNDTIMEO), reads by poll() with a deadline, frames split as they
/// arrive.
using tcp_peer = test::skynet_client;

/// A listening socket on 127.0.0.1 (port 0 = ephemeral), accepting with a deadline.
class tcp_listener {
 public:
  explicit tcp_listener(std::uint16_t port = 0) { open(port); }
  ~tcp_listener() { close(); }
  tcp_listener(const tcp_listener&) = delete;
  tcp_listener& operator=(const tcp_listener&) = delete;

  bool open(std::uint16_t port) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      close();
      return false;
    }
    port_ = ntohs(a.sin_port);
    accepted_ = 0;  // counted per listening socket: a restarted server counts anew
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool listening() const { return fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

  std::optional<tcp_peer> accept(steady::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      return tcp_peer(test::raw_socket(c, io_wait));
    }
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  int accepted_ = 0;
};

// ---------------------------------------------------------------- the nodes --

using test_node = test::cluster_test_node;

// ------------------------------------------------------------------ rx side --

/// A raw client of the server node: writes request bytes, reads whole responses.
struct rx_client {
  using reply = tcp_peer::reply;

  explicit rx_client(std::uint16_t port) : peer(port) {}

  /// The next whole response, or nullopt (with `why`) on close, timeout or bad bytes.
  std::optional<reply> next(std::string& why) { return peer.next_response(steady::now() + io_wait, why); }

  tcp_peer peer;
};

/// The follow-up call the probe made after each bad frame, and its answer.
const target followup_target = target::named("@echo");
constexpr std::uint32_t followup_session = 999;
const json& standard_followup_answer() {
  static const json j = row("rx_bad_request_type_0x05").meaning.at("followup_call_on_same_connection").at(0);
  return j;
}

/// Compares one answer with one of the row's expected answers (`skynet_responses` form).
void expect_answer(const json& want, const rx_client::reply& got, const std::map<std::uint32_t, byte_buffer>& sent,
                   bool echo_identical) {
  const auto session = want.at("session").get<std::uint32_t>();
  const auto kind = want.at("kind").get<std::string>();
  SCOPED_TRACE("expected answer for session " + std::to_string(session) + " (" + kind + ")");
  EXPECT_EQ(got.msg.session, session);
  if (want.contains("frames")) {
    EXPECT_EQ(got.frames, want["frames"].get<int>());
  }
  if (kind == "error") {
    ASSERT_FALSE(got.msg.ok) << "OK instead of an ERROR";
    EXPECT_EQ(std::string(as_chars(got.msg.payload)), want.at("error_text").get<std::string>());
    return;
  }
  ASSERT_TRUE(got.msg.ok) << "ERROR: " << as_chars(got.msg.payload);
  if (kind == "multi_end") {
    EXPECT_TRUE(got.msg.multipart);
    EXPECT_EQ(got.last, wire::response_type::multi_end);
  } else {
    ASSERT_EQ(kind, "ok");
    EXPECT_FALSE(got.msg.multipart);
    EXPECT_EQ(got.last, wire::response_type::ok);
  }
  if (want.contains("payload_len")) {
    EXPECT_EQ(got.msg.payload.size(), want["payload_len"].get<std::size_t>());
  }
  auto v = seri::unpack(got.msg.payload);
  ASSERT_TRUE(v.has_value()) << v.error().message();
  const json& values_want = want.at("values");
  if (values_want.is_array()) {
    const std::string diff = test::match_values(values_want, tools::values_to_json(*v));
    EXPECT_TRUE(diff.empty()) << diff;
  } else {
    // "1 values": a large echo, given by count; with echo_identical, byte for byte.
    EXPECT_EQ(std::to_string(v->size()) + " values", values_want.get<std::string>());
  }
  if (echo_identical) {
    auto it = sent.find(session);
    ASSERT_NE(it, sent.end());
    EXPECT_TRUE(got.msg.payload == it->second) << "the echo is not the request's payload";
  }
}

/// Answers this implementation gives where skynet gives none (see the top comment).
struct extra_answer {
  std::uint32_t session;
  std::string error_text;
};
std::vector<extra_answer> our_extra_answers(const vector_entry& v) {
  if (v.name == "rx_py_dotname_and_bare_name") return {{15, std::string(wire::error_invalid_name)}};  // bare "echo"
  if (v.name == "rx_name_length_zero") return {{24, std::string(wire::error_invalid_name)}};
  if (v.name == "rx_call_with_invalid_seri_payload") {
    const auto payload = request_payloads(v.bytes).at(23);
    auto bad = seri::unpack(payload);
    EXPECT_FALSE(bad.has_value());
    return {{23, bad ? std::string() : bad.error().message()}};
  }
  return {};
}

std::string param_name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }

class RxRow : public ::testing::TestWithParam<std::string> {};

TEST_P(RxRow, AnsweredAsSkynetAnswered) {
  const vector_entry& v = row(GetParam());
  ASSERT_TRUE(v.has_bytes);
  const json& m = v.meaning;

  const auto tags = trace_tags(v.bytes);
  std::optional<cluster_debug_log> log;
  if (!tags.empty()) log.emplace();

  test_node server("server", true);
  auto port = server.cluster->open();
  ASSERT_TRUE(port.has_value()) << port.error();
  rx_client witness(*port);  // another connection, idle during the row
  rx_client c(*port);
  ASSERT_TRUE(witness.peer.connected() && c.peer.connected());

  // The row's bytes, segmented as the probe sent them.
  const std::size_t piece = v.name == "rx_py_frame_split_byte_by_byte" ? 1 : 0;
  ASSERT_TRUE(c.peer.write(v.bytes, piece));

  // What skynet answered (in order), plus the answers we add on purpose (any place).
  const json& want = m.at("skynet_responses");
  const auto extras = our_extra_answers(v);
  std::vector<rx_client::reply> got;
  for (std::size_t i = 0; i < want.size() + extras.size(); ++i) {
    std::string why;
    auto r = c.next(why);
    ASSERT_TRUE(r.has_value()) << "answer " << i + 1 << " of " << want.size() + extras.size() << ": " << why;
    got.push_back(std::move(*r));
  }
  for (const auto& e : extras) {
    auto it = std::find_if(got.begin(), got.end(), [&](const auto& r) { return r.msg.session == e.session; });
    ASSERT_NE(it, got.end()) << "no ERROR for session " << e.session;
    EXPECT_FALSE(it->msg.ok);
    EXPECT_EQ(std::string(as_chars(it->msg.payload)), e.error_text);
    EXPECT_EQ(it->frames, 1);
    got.erase(it);
  }
  const auto sent = request_payloads(v.bytes);
  const bool echo_identical = m.value("echo_identical", false);
  for (std::size_t i = 0; i < want.size(); ++i) expect_answer(want[i], got[i], sent, echo_identical);
  for (const auto& tag : tags) {
    EXPECT_TRUE(log->logs().wait_for("<TRACE " + tag + "> ", io_wait)) << "trace tag not logged: " << tag;
  }

  if (m.at("connection_closed_by_skynet").get<bool>()) {
    std::string why;
    EXPECT_TRUE(c.peer.closed_by_peer(steady::now() + io_wait, why)) << why;
  } else {
    // Nothing else was sent: the follow-up call's answer is the next thing on the wire.
    ASSERT_TRUE(c.peer.write(request_bytes(followup_target, followup_session, {"still alive?"})));
    std::string why;
    auto r = c.next(why);
    ASSERT_TRUE(r.has_value()) << "follow-up call on the same connection: " << why;
    const json& followup = m.contains("followup_call_on_same_connection") ? m["followup_call_on_same_connection"][0]
                                                                          : standard_followup_answer();
    expect_answer(followup, *r, {}, false);
    EXPECT_EQ(c.peer.buffered(), 0u);
    EXPECT_EQ(c.peer.pending(), 0u) << "a multi-part answer was left unfinished";
    EXPECT_EQ(server.cluster->inbound_connections(), 2u);
  }

  // The other connection is still served.
  ASSERT_TRUE(witness.peer.write(request_bytes(followup_target, followup_session, {"still alive?"})));
  std::string why;
  auto w = witness.next(why);
  ASSERT_TRUE(w.has_value()) << "the other connection: " << why;
  expect_answer(standard_followup_answer(), *w, {}, false);
}

INSTANTIATE_TEST_SUITE_P(Behaviour, RxRow, ::testing::ValuesIn(row_names("rx_")),
                         param_name);

// ------------------------------------------------------------------ tx side --

/// The call of a row's `lua` field: cluster.call("fake", "@x", "echo", 1).
struct lua_call {
  std::string node;
  target to;
  values args;
};

lua_call parse_lua_call(const std::string& lua) {
  const auto open = lua.find('(');
  const auto close = lua.rfind(')');
  if (lua.rfind("cluster.call(", 0) != 0 || close == std::string::npos) throw std::runtime_error("not a call: " + lua);
  std::vector<lua_value> parts;
  static const std::regex token(R"re(\s*(?:"([^"]*)"|(-?\d+))\s*(?:,|$))re");
  const std::string inner = lua.substr(open + 1, close - open - 1);
  for (std::sregex_iterator it(inner.begin(), inner.end(), token), end; it != end; ++it) {
    if ((*it)[1].matched) {
      parts.emplace_back((*it)[1].str());
    } else {
      parts.emplace_back(static_cast<std::int64_t>(std::stoll((*it)[2].str())));
    }
  }
  if (parts.size() < 2) throw std::runtime_error("not a call: " + lua);
  lua_call c{parts[0].as_string(), target::named(parts[1].as_string()), {}};
  c.args.assign(parts.begin() + 2, parts.end());
  return c;
}

/// The session of the call a row answers: that of its last frame (none for a body too
/// short to hold one).
std::optional<std::uint32_t> row_session(const vector_entry& v) {
  std::optional<std::uint32_t> s;
  for (const auto& b : frame_bodies(v.bytes)) {
    if (b.size() >= 4) s = le32(b.data());
  }
  return s;
}

/// The row's bytes with every non-zero session moved by (actual - captured).
byte_buffer rewrite_sessions(bytes_view bytes, std::uint32_t captured, std::uint32_t actual) {
  byte_buffer out;
  for (auto b : frame_bodies(bytes)) {
    if (b.size() >= 4 && le32(b.data()) != 0) put_le32(b.data(), le32(b.data()) - captured + actual);
    out.push_back(static_cast<std::uint8_t>(b.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(b.size() & 0xff));
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

/// True if some frame of the row makes a caller close the connection (skynet's too).
bool breaks_connection(const vector_entry& v) {
  for (const auto& b : frame_bodies(v.bytes)) {
    if (!wire::decode_response_frame(b)) return true;
  }
  return false;
}

/// The text of an ERROR frame for `session` in the row, if there is one.
std::optional<std::string> error_text_for(const vector_entry& v, std::uint32_t session) {
  for (const auto& b : frame_bodies(v.bytes)) {
    auto f = wire::decode_response_frame(b);
    if (f && f->type == wire::response_type::error && f->session == session) return std::string(as_chars(f->data));
  }
  return std::nullopt;
}

bool is_drop_row(const vector_entry& v) { return v.name.rfind("tx_drop_with_outstanding_", 0) == 0; }

/// A client node whose table has "fake" pointing at a scripted server of the test.
class tx_harness {
 public:
  tx_harness() : client_("client", false) { point_at(server_.port()); }

  void point_at(std::optional<std::uint16_t> port) {
    cluster_names t;
    t.nodes["fake"] = port ? std::optional(cluster_node_address{"127.0.0.1", *port}) : std::nullopt;
    client_.cluster->reload(t);
  }

  std::future<actor::call_result> call(const lua_call& c) {
    return client_.cluster->call(c.node, c.to, c.args, tx_call_timeout);
  }

  /// The scripted server's side: the node's next request, on the open connection or, if
  /// there is none (or it was cut), on a newly accepted one.
  std::optional<wire::request_message> next_request(std::string& why) {
    const auto deadline = steady::now() + io_wait;
    if (!conn_) {
      conn_ = server_.accept(deadline);
      if (!conn_) {
        why = "the node did not connect";
        return std::nullopt;
      }
      requests_ = wire::request_assembler{};
    }
    byte_buffer body;
    for (;;) {
      switch (conn_->next_frame(deadline, body)) {
        case tcp_peer::got::closed: why = "the node closed the connection"; return std::nullopt;
        case tcp_peer::got::timeout: why = "no request within the deadline"; return std::nullopt;
        case tcp_peer::got::frame: break;
      }
      auto f = wire::decode_request_frame(body);
      if (!f) {
        why = "malformed request frame: " + f.error().message();
        return std::nullopt;
      }
      auto ev = requests_.push(*f);
      if (ev.what == wire::request_event::kind::request) return std::move(ev.message);
      if (ev.what != wire::request_event::kind::none) {
        why = "request assembler: " + ev.reason;
        return std::nullopt;
      }
    }
  }
  bool write(bytes_view b) { return conn_ && conn_->write(b); }
  /// The scripted server closes its end of the connection.
  void hang_up() { conn_.reset(); }
  /// The node must close the connection (it got a frame it cannot accept).
  void expect_node_hangs_up() {
    ASSERT_TRUE(conn_.has_value());
    std::string why;
    EXPECT_TRUE(conn_->closed_by_peer(steady::now() + io_wait, why)) << "the node kept the connection: " << why;
    conn_.reset();
  }
  bool connected() const { return conn_.has_value(); }

  tcp_listener& server() { return server_; }
  test_node& client() { return client_; }

 private:
  tcp_listener server_;
  test_node client_;
  std::optional<tcp_peer> conn_;
  wire::request_assembler requests_;
};

actor::call_result outcome_of(std::future<actor::call_result>& f) {
  if (f.wait_for(io_wait) != std::future_status::ready) {
    return unexpected(actor::call_error{actor::call_errc::timeout, "TEST: no outcome within 10 s (timeout is 60 s)"});
  }
  return f.get();
}

/// Checks a finished call against the row's `skynet_caller_*` fields.
void expect_caller_outcome(const vector_entry& v, const actor::call_result& r) {
  const json& m = v.meaning;
  if (v.name == "tx_multi_size_mismatch") {
    // Deliberate deviation (docs/protocol.md section 9.1): skynet returns zero values.
    ASSERT_TRUE(m.at("skynet_caller_ok").get<bool>());
    ASSERT_FALSE(r.has_value()) << "skynet returns zero values; we fail the call on purpose";
    EXPECT_EQ(r.error().text, "multi-part response size mismatch");
    return;
  }
  if (m.at("skynet_caller_ok").get<bool>()) {
    ASSERT_TRUE(r.has_value()) << r.error().text;
    const std::string diff = test::match_values(m.at("skynet_caller_results"), tools::values_to_json(*r));
    EXPECT_TRUE(diff.empty()) << diff;
    return;
  }
  ASSERT_FALSE(r.has_value()) << "the call succeeded";
  EXPECT_NE(r.error().code, actor::call_errc::timeout) << r.error().text;
  // skynet's caller raises its generic "call failed" (with its install path); ours says why.
  const auto skynet_error = m.at("skynet_caller_error").get<std::string>();
  std::smatch unpack_error;
  const auto captured = row_session(v);
  if (auto text = captured ? error_text_for(v, *captured) : std::nullopt) {
    EXPECT_EQ(r.error().text, *text);  // the ERROR frame's text
  } else if (std::regex_search(skynet_error, unpack_error, std::regex(R"(Invalid serialize stream \d+)"))) {
    EXPECT_EQ(r.error().text.rfind(unpack_error.str(), 0), 0u) << r.error().text;
  } else {
    EXPECT_NE(r.error().text.find("connection to cluster node fake lost"), std::string::npos) << r.error().text;
  }
}

/// One tx row: the node makes the row's call, the scripted server answers with the row's
/// bytes (sessions moved to the one the node used unless `capture_sessions`: then the
/// node's session must be the row's). Returns the call if the row leaves it pending
/// (tx_drop_with_outstanding_held in capture order: the next row's hang-up ends it).
std::optional<std::future<actor::call_result>> replay_tx_row(tx_harness& h, const vector_entry& v,
                                                             bool capture_sessions,
                                                             std::optional<std::uint32_t> expected_session) {
  SCOPED_TRACE(v.name);
  const lua_call c = parse_lua_call(v.meaning.at("lua").get<std::string>());
  const bool new_connection = !h.connected();
  const int accepted_before = h.server().accepted();
  auto fut = h.call(c);

  std::string why;
  auto req = h.next_request(why);
  if (!req) {
    ADD_FAILURE() << why;
    return std::nullopt;
  }
  EXPECT_EQ(h.server().accepted(), accepted_before + (new_connection ? 1 : 0));
  EXPECT_FALSE(req->push);
  EXPECT_TRUE(req->to.by_name && req->to.name == c.to.name) << req->to.name;
  auto args = seri::unpack(req->payload);
  EXPECT_TRUE(args.has_value() && *args == c.args);
  if (expected_session) {
    EXPECT_EQ(req->session, *expected_session) << "skynet's sender used this session";
  }
  const auto captured = row_session(v);
  if (capture_sessions && captured) {
    EXPECT_EQ(req->session, *captured) << "the row's session";
  }

  // The scripted server's move.
  if (v.name == "tx_drop_with_outstanding_held") {
    // Never answered. Alone, the server then hangs up; in capture order the next row's
    // call (tx_drop_with_outstanding_closer) makes it hang up with both calls pending.
    EXPECT_NE(fut.wait_for(0s), std::future_status::ready);
    if (capture_sessions) return fut;
    h.hang_up();
  } else if (v.name == "tx_drop_with_outstanding_closer") {
    h.hang_up();
  } else {
    EXPECT_TRUE(h.write(rewrite_sessions(v.bytes, captured.value_or(req->session), req->session)));
    if (breaks_connection(v)) h.expect_node_hangs_up();
  }
  auto r = outcome_of(fut);
  expect_caller_outcome(v, r);
  return std::nullopt;
}

class TxRowAlone : public ::testing::TestWithParam<std::string> {};

TEST_P(TxRowAlone, CallerSeesWhatSkynetsCallerSaw) {
  const vector_entry& v = row(GetParam());
  tx_harness h;
  replay_tx_row(h, v, false, 1u);  // a fresh node's first call has session 1
  if (HasFailure()) return;

  // Afterwards: the same connection if it survived, a new one if it had to go.
  const bool must_reconnect = is_drop_row(v) || breaks_connection(v);
  EXPECT_EQ(h.connected(), !must_reconnect);
  auto next = h.call(parse_lua_call(R"(cluster.call("fake", "@x", "echo", 7))"));
  std::string why;
  auto req = h.next_request(why);
  ASSERT_TRUE(req.has_value()) << why;
  EXPECT_EQ(req->session, 2u);
  EXPECT_EQ(h.server().accepted(), must_reconnect ? 2 : 1);
  byte_buffer ok;
  ASSERT_TRUE(wire::encode_response(req->session, true, req->payload, ok).has_value());
  ASSERT_TRUE(h.write(ok));
  auto r = outcome_of(next);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(*r, (values{"echo", 7}));
}

INSTANTIATE_TEST_SUITE_P(Behaviour, TxRowAlone, ::testing::ValuesIn(row_names("tx_")),
                         param_name);

TEST(TxCapture, AllRowsInCaptureOrderOnOneNode) {
  tx_harness h;
  std::vector<std::pair<std::string, std::future<actor::call_result>>> held;
  std::uint32_t session = 0;
  const auto names = row_names("tx_");
  ASSERT_EQ(names.size(), 18u);
  for (const auto& name : names) {
    const vector_entry& v = row(name);
    auto pending = replay_tx_row(h, v, true, ++session);
    if (pending) {
      held.emplace_back(name, std::move(*pending));
      continue;
    }
    // A hang-up fails the calls held on that connection too, at once.
    if (!h.connected()) {
      for (auto& [held_name, f] : held) {
        SCOPED_TRACE(held_name);
        auto r = outcome_of(f);
        expect_caller_outcome(row(held_name), r);
      }
      held.clear();
    }
    if (HasFailure()) return;  // the rows after it depend on the state this one left
  }
  EXPECT_TRUE(held.empty());
  // One connection at first, then one after each of: the drop, the short frame, the
  // unknown type.
  EXPECT_EQ(h.server().accepted(), 4);
}

// ------------------------------------------------------ connection timeline --

TEST(BehaviourTcpConn, ServerRestartAndReload) {
  const vector_entry& v = row("conn_server_restart_and_reload");
  std::map<std::string, json> step;
  for (const auto& s : v.meaning.at("timeline")) step[s.at("step").get<std::string>()] = s;
  auto skynet_ok = [&](const std::string& s) { return step.at(s).at("ok").get<bool>(); };
  const lua_call echo = parse_lua_call(R"(cluster.call("fake", "@x", "echo", 1))");
  tx_harness h;
  const std::uint16_t port = h.server().port();

  // Answers the node's next request with an echo; returns its session (0 on failure).
  auto serve_one = [&](std::future<actor::call_result>& f) -> std::uint32_t {
    std::string why;
    auto req = h.next_request(why);
    if (!req) {
      ADD_FAILURE() << why;
      return 0;
    }
    byte_buffer ok;
    EXPECT_TRUE(wire::encode_response(req->session, true, req->payload, ok).has_value());
    EXPECT_TRUE(h.write(ok));
    auto r = outcome_of(f);
    EXPECT_TRUE(r.has_value()) << r.error().text;
    return req->session;
  };
  auto fails_at_once = [&](std::future<actor::call_result>& f) {
    auto r = outcome_of(f);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().code, actor::call_errc::timeout) << r.error().text;
  };

  {  // echo_up: server1, its connection 1, session 1 (server_side_events)
    ASSERT_TRUE(skynet_ok("echo_up"));
    auto f = h.call(echo);
    EXPECT_EQ(serve_one(f), 1u);
    EXPECT_EQ(h.server().accepted(), 1);
  }
  // The server is killed while idle.
  h.hang_up();
  h.server().close();
  for (const char* s : {"echo_while_down", "echo_while_down_again"}) {
    SCOPED_TRACE(s);
    ASSERT_FALSE(skynet_ok(s));
    auto f = h.call(echo);  // sessions 2 and 3 are used up
    fails_at_once(f);
  }
  // Restarted on the same address; the table is unchanged.
  if (!h.server().open(port)) GTEST_SKIP() << "port " << port << " was taken meanwhile: cannot restart there";
  {  // echo_after_restart: server2, connection 1, session 4
    ASSERT_TRUE(skynet_ok("echo_after_restart"));
    auto f = h.call(echo);
    EXPECT_EQ(serve_one(f), 4u);
    EXPECT_EQ(h.server().accepted(), 1);
  }
  {  // unknown_node: fails at once (skynet needs __nowaiting for that; we never wait)
    ASSERT_FALSE(skynet_ok("unknown_node"));
    auto f = h.client().cluster->call("nosuch", echo.to, echo.args, tx_call_timeout);
    auto r = outcome_of(f);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().text.find("absent"), std::string::npos) << r.error().text;
  }
  h.point_at(std::nullopt);  // reload_node_false: the node closes its connection
  h.expect_node_hangs_up();
  {
    ASSERT_FALSE(skynet_ok("echo_node_false"));
    auto f = h.call(echo);  // session 5
    auto r = outcome_of(f);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().text.find("is down"), std::string::npos) << r.error().text;
  }
  h.point_at(port);  // reload_node_back
  {
    // echo_node_back: skynet fails a call made right after the reload (its reconnect is
    // asynchronous); ours waits in the sender while it connects and succeeds (session 6,
    // server2's connection 2). A deliberate difference: no caller is failed needlessly.
    ASSERT_FALSE(skynet_ok("echo_node_back"));
    auto f = h.call(echo);
    EXPECT_EQ(serve_one(f), 6u);
    EXPECT_EQ(h.server().accepted(), 2);
  }
  {  // echo_node_back_later: server2, connection 2, session 7
    ASSERT_TRUE(skynet_ok("echo_node_back_later"));
    auto f = h.call(echo);
    EXPECT_EQ(serve_one(f), 7u);
    EXPECT_EQ(h.server().accepted(), 2);
  }
}

TEST(BehaviourTcpRows, EveryRowIsReplayed) {
  ASSERT_EQ(rows().size(), 42u);
  EXPECT_EQ(row_names("rx_").size(), 23u);
  EXPECT_EQ(row_names("tx_").size(), 18u);
  EXPECT_EQ(row_names("conn_").size(), 1u);
}

}  // namespace
}  // namespace csk::cluster
