// The admin endpoint: HTTP heads as byte vectors (pure), the Prometheus text of a known
// snapshot, and the service over real TCP on loopback: /metrics counters move with
// traffic, /status parses, wrong paths, methods and heads get their status codes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <cstring>
#include <regex>

#include "common/actor/runtime.hpp"
#include "common/net/net.hpp"
#include "services/admin/admin.hpp"
#include "services/admin/http.hpp"
#include "tests/support/http_get.hpp"

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
  s.services.push_back({0x0a, {"@echo", ".echo"}, 1, 7, 1500000000, 250000000});
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
  cluster::node::inbound_stat i;
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
  actor::runtime rt;
  net::net n(1);
  rt.set_extension(std::type_index(typeid(net::net)), &n);
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

  const std::string status = http_request(port, "GET /status HTTP/1.0\r\n\r\n");
  const auto body = status.substr(status.find("\r\n\r\n") + 4);
  auto j = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << status;
  EXPECT_EQ(j["generation"], 7);
  EXPECT_EQ(j["pid"], ::getpid());
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

}  // namespace
}  // namespace csk::admin
