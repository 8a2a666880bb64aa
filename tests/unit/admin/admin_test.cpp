// The admin endpoint: HTTP heads as byte vectors (pure), the Prometheus text of a known
// snapshot, and the service over real TCP on loopback: /metrics counters move with
// traffic, /status parses, wrong paths, methods and heads get their status codes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <cstring>
#include <regex>

#include "common/actor/runtime.hpp"
#include "common/base/memory_budget.hpp"
#include "common/net/net.hpp"
#include "common/wire/cluster_codec.hpp"
#include "services/admin/admin.hpp"
#include "services/admin/http.hpp"
#include "services/gate/directory.hpp"
#include "services/cluster/node.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/raw_socket.hpp"

#ifdef CSK_WITH_GPERFTOOLS
#define CSK_GPERFTOOLS 1
#else
#define CSK_GPERFTOOLS 0
#endif

namespace csk::admin {
namespace {

using namespace std::chrono_literals;

bytes_view bytes(std::string_view s) { return as_bytes(s); }

TEST(AdminHttp, UnpackFindsTheEndOfTheHead) {
  EXPECT_EQ(unpack_http(bytes("GET / HTTP/1.1\r\nHost: x\r\n")).what, net::unpack_result::status::need_more);
  const std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  auto u = unpack_http(bytes(head + "next"));
  ASSERT_EQ(u.what, net::unpack_result::status::message);
  EXPECT_EQ(u.header, 0u);
  EXPECT_EQ(u.length, head.size());
  auto lf = unpack_http(bytes("GET / HTTP/1.0\n\n"));
  ASSERT_EQ(lf.what, net::unpack_result::status::message);
  EXPECT_EQ(lf.length, 16u);
  const std::string huge = "GET /" + std::string(max_request, 'a');
  auto big = unpack_http(bytes(huge));
  ASSERT_EQ(big.what, net::unpack_result::status::error);
  EXPECT_NE(big.error.find("longer than 8192"), std::string::npos);
}

TEST(AdminHttp, ParseRequestLineAndRefuseBodies) {
  auto r = parse_request(bytes("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/metrics");
  EXPECT_EQ(r->query, "x=1");
  EXPECT_EQ(parse_request(bytes("GET /metrics HTTP/2\r\n\r\n")).error(), "unsupported version HTTP/2");
  EXPECT_EQ(parse_request(bytes("GET\r\n\r\n")).error(), "bad request line");
  EXPECT_EQ(parse_request(bytes("GET metrics HTTP/1.1\r\n\r\n")).error(), "bad request target");
  EXPECT_EQ(parse_request(bytes("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")).error(),
            "requests with a body are not served");
  EXPECT_EQ(parse_request(bytes("GET / HTTP/1.1\r\nnocolon\r\n\r\n")).error(), "bad header line: nocolon");
  EXPECT_TRUE(parse_request(bytes("GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n")).has_value());
  EXPECT_EQ(response(404, "text/plain", "no"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
}

TEST(AdminMetrics, PrometheusTextOfAKnownSnapshot) {
  snapshot s;
  s.generation = 3;
  s.runtime.services = 2;
  s.runtime.dispatched = 10;
  s.services.push_back({0x0a, {"@echo", ".echo"}, 1, 7, 1500000000, 250000000, "echo", 0});
  s.cluster = true;
  s.inbound_connections = 4;
  cluster::node::peer_stat p;
  p.name = "db\"1";
  p.stats.calls = 5;
  p.stats.pushes = 2;
  p.stats.connects = 1;
  p.pending = 3;
  p.connected = true;
  p.stats.frames_out = 11;
  p.stats.bytes_out = 1200;
  p.stats.frames_in = 9;
  p.stats.bytes_in = 800;
  s.peers.push_back(p);
  inbound_conn i;
  i.id = 17;
  i.peer = "127.0.0.1:40000";
  i.stats.calls = 6;
  i.in_flight = 2;
  i.stats.frames_in = 8;
  i.stats.bytes_in = 640;
  i.stats.frames_out = 6;
  i.stats.bytes_out = 300;
  s.inbound.push_back(i);
  const std::string t = prometheus_text(s);
  for (const char* line : {"csk_worker_generation 3\n", "csk_runtime_services 2\n", "csk_runtime_messages_total 10\n",
                           "csk_service_mailbox{handle=\":0000000a\",name=\"@echo\"} 1\n",
                           "csk_service_messages_total{handle=\":0000000a\",name=\"@echo\"} 7\n",
                           "csk_service_busy_seconds_total{handle=\":0000000a\",name=\"@echo\"} 1.5\n",
                           "csk_cluster_inbound_connections 4\n", "csk_cluster_peer_pending_calls{peer=\"db\\\"1\"} 3\n",
                           "csk_cluster_peer_calls_total{peer=\"db\\\"1\"} 5\n", "csk_cluster_peer_connected{peer=\"db\\\"1\"} 1\n",
                           "csk_service_cpu_seconds_total{handle=\":0000000a\",name=\"@echo\"} 0.25\n",
                           "csk_cluster_peer_frames_total{peer=\"db\\\"1\",direction=\"out\"} 11\n",
                           "csk_cluster_peer_frames_total{peer=\"db\\\"1\",direction=\"in\"} 9\n",
                           "csk_cluster_peer_bytes_total{peer=\"db\\\"1\",direction=\"out\"} 1200\n",
                           "csk_cluster_peer_bytes_total{peer=\"db\\\"1\",direction=\"in\"} 800\n",
                           "csk_cluster_inbound_peer_in_flight{peer=\"127.0.0.1:40000\",connection=\"17\"} 2\n",
                           "csk_cluster_inbound_peer_calls_total{peer=\"127.0.0.1:40000\",connection=\"17\"} 6\n",
                           "csk_cluster_inbound_peer_frames_total{peer=\"127.0.0.1:40000\",connection=\"17\",direction=\"in\"} 8\n",
                           "csk_cluster_inbound_peer_bytes_total{peer=\"127.0.0.1:40000\",connection=\"17\",direction=\"out\"} 300\n",
                           "# TYPE csk_service_messages_total counter\n"}) {
    EXPECT_NE(t.find(line), std::string::npos) << line << "\n" << t;
  }
  // Every sample line is NAME{labels} VALUE or NAME VALUE; every family has HELP and TYPE.
  const std::regex sample(R"(^[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+$)");
  std::istringstream in(t);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }
  auto j = nlohmann::json::parse(status_json(s));
  EXPECT_EQ(j["generation"], 3);
  EXPECT_EQ(j["services"][0]["names"][0], "@echo");
  EXPECT_EQ(j["cluster"]["peers"][0]["pending"], 3);
  EXPECT_EQ(j["cluster"]["peers"][0]["bytes_out"], 1200);
  EXPECT_EQ(j["cluster"]["inbound"][0]["peer"], "127.0.0.1:40000");
  EXPECT_EQ(j["cluster"]["inbound"][0]["frames_in"], 8);
  EXPECT_EQ(j["services"][0]["cpu_s"], 0.25);
  EXPECT_TRUE(j["stores"].empty());
  EXPECT_EQ(t.find("csk_entity_"), std::string::npos) << "no journaled store: no entity families";
}

// The budgets (issue 14): the node's memory budget, the runtime's refusals and pauses, the
// net's receive buffers, back-pressure per accepted cluster connection and per gate, and
// the bytes held for cluster inbound connections.
TEST(AdminMetrics, BudgetsAndBackPressure) {
  snapshot s;
  s.runtime.overload_refused = 41;
  s.runtime.mailbox_pauses = 42;
  s.has_budget = true;
  s.budget = {123456, 1073741824, 805306368, 2, 9};
  s.net_read_buffer_bytes = 131072;
  s.net_read_buffers = 2;
  s.net_pooled_bytes = 65536;
  s.cluster = true;
  s.inbound_overrun_closes = 3;
  inbound_conn a;
  a.id = 5;
  a.peer = "10.0.0.1:1";
  a.stats.pending_bytes = 1000;
  a.stats.mailbox_pauses = 7;
  a.stats.memory_pauses = 8;
  a.queued_bytes = 200;
  inbound_conn b;
  b.id = 6;
  b.peer = "10.0.0.2:2";
  b.stats.pending_bytes = 30;
  b.queued_bytes = 4;
  s.inbound = {a, b};
  s.gates.push_back({".gate.kv", 11, 12, 5000});
  s.gates.push_back({".gate.chat", 0, 1, 66});
  const std::string t = prometheus_text(s);
  for (const char* line : {"csk_runtime_overload_refused_total 41\n", "csk_runtime_mailbox_pauses_total 42\n",
                           "csk_memory_budget_held_bytes 123456\n", "csk_memory_budget_high_bytes 1073741824\n",
                           "csk_memory_budget_low_bytes 805306368\n", "csk_memory_budget_waiting_feeders 2\n",
                           "csk_memory_budget_pauses_total 9\n", "csk_net_read_buffer_bytes 131072\n",
                           "csk_net_read_buffers 2\n", "csk_net_pooled_buffer_bytes 65536\n",
                           "csk_cluster_inbound_overrun_closes_total 3\n",
                           "csk_cluster_inbound_peer_pending_bytes{peer=\"10.0.0.1:1\",connection=\"5\"} 1000\n",
                           "csk_cluster_inbound_peer_pending_bytes{peer=\"10.0.0.2:2\",connection=\"6\"} 30\n",
                           "csk_cluster_inbound_peer_queued_bytes{peer=\"10.0.0.1:1\",connection=\"5\"} 200\n",
                           "csk_cluster_inbound_peer_mailbox_pauses_total{peer=\"10.0.0.1:1\",connection=\"5\"} 7\n",
                           "csk_cluster_inbound_peer_memory_pauses_total{peer=\"10.0.0.1:1\",connection=\"5\"} 8\n",
                           "csk_connections_held_bytes{class=\"cluster_inbound\"} 1234\n",
                           "csk_gate_mailbox_pauses_total{gate=\".gate.kv\"} 11\n",
                           "csk_gate_memory_pauses_total{gate=\".gate.kv\"} 12\n",
                           "csk_gate_memory_pauses_total{gate=\".gate.chat\"} 1\n",
                           "csk_connections_held_bytes{class=\"gate\"} 5066\n",
                           "# TYPE csk_memory_budget_pauses_total counter\n",
                           "# TYPE csk_memory_budget_held_bytes gauge\n",
                           "# TYPE csk_cluster_inbound_overrun_closes_total counter\n"}) {
    EXPECT_NE(t.find(line), std::string::npos) << line << "\n" << t;
  }
  // Every family once, with its HELP before its TYPE.
  for (const char* family : {"csk_memory_budget_held_bytes", "csk_cluster_inbound_peer_queued_bytes",
                             "csk_gate_memory_pauses_total", "csk_net_read_buffers"}) {
    const std::string help = "# HELP " + std::string(family) + " ";
    const auto at = t.find(help);
    ASSERT_NE(at, std::string::npos) << family;
    EXPECT_EQ(t.find(help, at + 1), std::string::npos) << family;
    EXPECT_EQ(t.find("# TYPE " + std::string(family) + " ", at), t.find('\n', at) + 1) << family;
  }
  auto j = nlohmann::json::parse(status_json(s));
  EXPECT_EQ(j["runtime"]["overload_refused"], 41);
  EXPECT_EQ(j["runtime"]["mailbox_pauses"], 42);
  EXPECT_EQ(j["budget"], nlohmann::json::parse(R"({"held":123456,"high":1073741824,"low":805306368,"waiting":2,"pauses":9})"));
  EXPECT_EQ(j["net"]["read_buffer_bytes"], 131072);
  EXPECT_EQ(j["net"]["read_buffers"], 2);
  EXPECT_EQ(j["net"]["pooled_bytes"], 65536);
  EXPECT_EQ(j["cluster"]["inbound_overrun_closes"], 3);
  EXPECT_EQ(j["cluster"]["inbound_held_bytes"], 1234);
  EXPECT_EQ(j["cluster"]["inbound"][0]["pending_bytes"], 1000);
  EXPECT_EQ(j["cluster"]["inbound"][0]["queued_bytes"], 200);
  EXPECT_EQ(j["cluster"]["inbound"][0]["mailbox_pauses"], 7);
  EXPECT_EQ(j["cluster"]["inbound"][0]["memory_pauses"], 8);
  EXPECT_EQ(j["cluster"]["inbound"][1]["pending_bytes"], 30);
  EXPECT_EQ(j["gates"], nlohmann::json::parse(R"([{"name":".gate.kv","mailbox_pauses":11,"memory_pauses":12,"held_bytes":5000},
                                                 {"name":".gate.chat","mailbox_pauses":0,"memory_pauses":1,"held_bytes":66}])"));
}

// Without a memory budget, a cluster or gates, their families are left out (not zeros
// that would read as "nothing held"); the runtime's and the net's are always there.
TEST(AdminMetrics, NoBudgetNoClusterNoGates) {
  const snapshot s;
  const std::string t = prometheus_text(s);
  for (const char* absent : {"csk_memory_budget_", "csk_connections_held_bytes", "csk_cluster_", "csk_gate_"}) {
    EXPECT_EQ(t.find(absent), std::string::npos) << absent << "\n" << t;
  }
  for (const char* present : {"csk_runtime_overload_refused_total 0\n", "csk_runtime_mailbox_pauses_total 0\n",
                              "csk_net_read_buffers 0\n", "csk_net_pooled_buffer_bytes 0\n"}) {
    EXPECT_NE(t.find(present), std::string::npos) << present << "\n" << t;
  }
  auto j = nlohmann::json::parse(status_json(s));
  EXPECT_TRUE(j["budget"].is_null());
  EXPECT_TRUE(j["gates"].is_array() && j["gates"].empty());
}

TEST(AdminMetrics, EntityJournalsPerStore) {
  snapshot s;
  store_stat st;
  st.id = "players";
  st.type = "game.player";
  st.entities = 1000;
  st.journal_bytes = 4096;
  st.journal_capacity = 67108864;
  st.records = 77;
  st.records_since_checkpoint = 12;
  st.checkpoints = 3;
  st.forced_checkpoints = 1;
  st.last_checkpoint_unix_ms = 1700000000500;
  st.checkpointing = true;
  st.recovered_entities = 900;
  st.recovered_records = 40;
  st.recovery_us = 2500;
  st.recovery_stopped_at_bad_record = true;
  st.recovery_note = "stopped at seq 41";
  s.stores.push_back(st);
  const std::string t = prometheus_text(s);
  for (const char* line : {"csk_entity_entities{store=\"players\"} 1000\n", "csk_entity_journal_bytes{store=\"players\"} 4096\n",
                           "csk_entity_journal_capacity_bytes{store=\"players\"} 67108864\n",
                           "csk_entity_journal_records_total{store=\"players\"} 77\n",
                           "csk_entity_journal_records_since_checkpoint{store=\"players\"} 12\n",
                           "csk_entity_checkpoints_total{store=\"players\"} 3\n",
                           "csk_entity_forced_checkpoints_total{store=\"players\"} 1\n",
                           "csk_entity_checkpoint_in_progress{store=\"players\"} 1\n",
                           "csk_entity_last_checkpoint_timestamp_seconds{store=\"players\"} 1700000000\n",
                           "csk_entity_recovered_entities{store=\"players\"} 900\n",
                           "csk_entity_recovered_records{store=\"players\"} 40\n",
                           "csk_entity_recovery_seconds{store=\"players\"} 0.0025\n",
                           "csk_entity_recovery_stopped_at_bad_record{store=\"players\"} 1\n",
                           "# TYPE csk_entity_checkpoints_total counter\n"}) {
    EXPECT_NE(t.find(line), std::string::npos) << line << "\n" << t;
  }
  auto j = nlohmann::json::parse(status_json(s));
  EXPECT_EQ(j["stores"][0]["id"], "players");
  EXPECT_EQ(j["stores"][0]["recovered_records"], 40);
  EXPECT_EQ(j["stores"][0]["recovery_note"], "stopped at seq 41");
  EXPECT_EQ(j["stores"][0]["recovery_stopped_at_bad_record"], true);
}

class echo final : public actor::service {
 public:
  actor::task<actor::values> handle(actor::context&, actor::message& m) override { co_return m.args; }
};

using test::http_request;  // any head, as it is; the whole answer (the server closes)

std::uint64_t metric(const std::string& text, const std::string& name_and_labels) {
  const auto at = text.find("\n" + name_and_labels + " ");
  if (at == std::string::npos) return ~std::uint64_t{0};
  return std::stoull(text.substr(at + name_and_labels.size() + 2));
}

TEST(AdminService, ServesMetricsThatMoveAndStatus) {
  memory_budget budget(64 << 20, 48 << 20);  // outlives the runtime
  budget.charge(1 << 20);                    // held on nobody's behalf: a floor for held()
  actor::runtime_options ro;
  ro.budget = &budget;
  gate::directory gates;  // as the worker has it: every gate registers (this one: .admin)
  actor::runtime rt(ro);
  net::net n(1);
  rt.set_extension(std::type_index(typeid(net::net)), &n);
  rt.set_extension(std::type_index(typeid(gate::directory)), &gates);
  register_types(rt);
  ASSERT_TRUE(rt.spawn(std::make_unique<echo>(), {}, {".echo"}).has_value());
  // A listening socket on port 0, adopted as the supervisor's would be.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::uint16_t port = ntohs(a.sin_port);
  n.start();
  auto h = rt.spawn("admin", {lua_value(lua_table{}.set("fd", lfd)), lua_value(lua_table{}.set("generation", 7))}, {".admin"});
  ASSERT_TRUE(h.has_value()) << h.error();
  rt.start();

  const std::string get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string first = http_request(port, get);
  ASSERT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << first;
  EXPECT_NE(first.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(metric(first, "csk_worker_generation"), 7u);
  const auto before = metric(first, "csk_service_messages_total{handle=\":00000001\",name=\".echo\"}");
  ASSERT_NE(before, ~std::uint64_t{0}) << first;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(rt.call(".echo", actor::values{i}).get().has_value());
  const std::string second = http_request(port, get);
  EXPECT_EQ(metric(second, "csk_service_messages_total{handle=\":00000001\",name=\".echo\"}"), before + 5) << second;
  EXPECT_GT(metric(second, "csk_net_bytes_in_total"), metric(first, "csk_net_bytes_in_total"));
  // The runtime's budget, and the endpoint's own gate (found in the gate::directory).
  EXPECT_EQ(metric(second, "csk_memory_budget_high_bytes"), 64u << 20) << second;
  EXPECT_EQ(metric(second, "csk_memory_budget_low_bytes"), 48u << 20);
  EXPECT_GE(metric(second, "csk_memory_budget_held_bytes"), 1u << 20);
  EXPECT_LT(metric(second, "csk_memory_budget_held_bytes"), 2u << 20);
  EXPECT_EQ(metric(second, "csk_memory_budget_waiting_feeders"), 0u);
  EXPECT_EQ(metric(second, "csk_gate_memory_pauses_total{gate=\".admin\"}"), 0u) << second;
  EXPECT_EQ(metric(second, "csk_gate_mailbox_pauses_total{gate=\".admin\"}"), 0u);
  EXPECT_NE(metric(second, "csk_net_read_buffers"), ~std::uint64_t{0});

  const std::string status = http_request(port, "GET /status HTTP/1.0\r\n\r\n");
  const auto body = status.substr(status.find("\r\n\r\n") + 4);
  auto j = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << status;
  EXPECT_EQ(j["generation"], 7);
  EXPECT_EQ(j["pid"], ::getpid());
  EXPECT_EQ(j["budget"]["high"], 64 << 20) << body;
  EXPECT_EQ(j["gates"][0]["name"], ".admin") << body;
  EXPECT_GT(j["gates"][0]["held_bytes"], 0) << "the /status request itself is held until answered";
  EXPECT_EQ(http_request(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not Found", 0), 0u);
  EXPECT_EQ(http_request(port, "DELETE /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(http_request(port, "GET /metrics SPDY/3\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(http_request(port, "GET /" + std::string(10000, 'a')), "") << "an overlong head closes the connection";
  EXPECT_EQ(http_request(port, get).rfind("HTTP/1.1 200 OK", 0), 0u) << "and the endpoint still serves";

  // Profiles: in gperftools' formats where the test binary is linked with it (not in
  // sanitizer builds), else 501.
  const std::string cpu = http_request(port, "GET /debug/pprof/profile?seconds=1 HTTP/1.1\r\n\r\n");
  const std::string heap = http_request(port, "GET /debug/pprof/heap?seconds=1 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(http_request(port, "GET /debug/pprof/profile?seconds=99 HTTP/1.1\r\n\r\n").substr(0, 12),
            std::string(CSK_GPERFTOOLS ? "HTTP/1.1 400" : "HTTP/1.1 501"));
#if CSK_GPERFTOOLS
  ASSERT_EQ(cpu.rfind("HTTP/1.1 200 OK", 0), 0u) << cpu.substr(0, 200);
  const std::string prof = cpu.substr(cpu.find("\r\n\r\n") + 4);
  // The legacy CPU profile header: five machine words 0, 3 (header words), 0 (version),
  // the sampling period in microseconds, 0; then samples; the trailer; the memory map.
  ASSERT_GE(prof.size(), 5 * sizeof(std::uintptr_t)) << prof.size();
  std::uintptr_t words[5];
  std::memcpy(words, prof.data(), sizeof words);
  EXPECT_EQ(words[0], 0u);
  EXPECT_EQ(words[1], 3u);
  EXPECT_EQ(words[2], 0u);
  EXPECT_GT(words[3], 0u);
  EXPECT_EQ(words[4], 0u);
  EXPECT_NE(prof.find("admin_test"), std::string::npos) << "the memory map names the binary";
  ASSERT_EQ(heap.rfind("HTTP/1.1 200 OK", 0), 0u) << heap.substr(0, 200);
  EXPECT_NE(heap.find("heap profile: "), std::string::npos) << heap.substr(0, 300);
  EXPECT_NE(heap.find("MAPPED_LIBRARIES:"), std::string::npos);
#else
  EXPECT_EQ(cpu.rfind("HTTP/1.1 501", 0), 0u) << cpu.substr(0, 200);
  EXPECT_EQ(heap.rfind("HTTP/1.1 501", 0), 0u) << heap.substr(0, 200);
#endif
  rt.shutdown();
  n.stop();
  rt.set_extension(std::type_index(typeid(net::net)), nullptr);
}

// The total of cluster connections closed for passing their multi-part budget outlives
// the connections (whose own series disappear with them).
TEST(AdminService, OverrunClosesOutliveTheirConnections) {
  actor::runtime rt;
  net::net n(1);  // one net thread: its events happen in the order they are handled
  cluster::node_options no;
  no.self = "me";
  no.listen = cluster::endpoint{"127.0.0.1", 0};
  no.limits.max_message_size = 1 << 20;
  no.limits.max_pending_bytes = 4096;
  cluster::node c(rt, n, no);
  rt.start();
  n.start();
  auto port = c.open();
  ASSERT_TRUE(port.has_value()) << port.error();
  EXPECT_NE(prometheus_text(gather(rt, 1)).find("\ncsk_cluster_inbound_overrun_closes_total 0\n"), std::string::npos);

  // Five multi-part requests announcing 1 MiB each, 1000 bytes of each sent: past 4096.
  byte_buffer flood;
  for (std::uint8_t session = 1; session <= 5; ++session) {
    const byte_buffer header = {0, 13, 0x01, 0x0a, 0, 0, 0, session, 0, 0, 0, 0, 0, 0x10, 0};
    flood.insert(flood.end(), header.begin(), header.end());
    byte_buffer chunk(2 + 5 + 1000, 0x61);  // a middle chunk (type 2) of `session`
    chunk[0] = static_cast<std::uint8_t>(1005 >> 8);
    chunk[1] = static_cast<std::uint8_t>(1005 & 0xff);
    chunk[2] = 0x02;
    chunk[3] = session;
    chunk[4] = chunk[5] = chunk[6] = 0;
    flood.insert(flood.end(), chunk.begin(), chunk.end());
  }
  auto a = test::raw_socket::connect_to(*port);
  a.write_all(flood);
  ASSERT_TRUE(a.wait_closed());
  // The node counts in on_close, after the socket is closed. A request on a new connection,
  // handled by the same net thread after that close, answered: the count is in.
  auto b = test::raw_socket::connect_to(*port);
  byte_buffer req;
  ASSERT_TRUE(wire::encode_request(wire::target::named("@nobody"), 1, false, {}, req).has_value());
  b.write_all(req);
  ASSERT_TRUE(b.read_frame().has_value());

  const snapshot s = gather(rt, 1);
  EXPECT_EQ(s.inbound_overrun_closes, 1u);
  ASSERT_EQ(s.inbound.size(), 1u) << "only b is left";
  EXPECT_EQ(s.inbound[0].stats.pending_bytes, 0u);
  EXPECT_NE(prometheus_text(s).find("\ncsk_cluster_inbound_overrun_closes_total 1\n"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(status_json(s))["cluster"]["inbound_overrun_closes"], 1);
  n.stop();
  rt.shutdown();
}

}  // namespace
}  // namespace csk::admin
