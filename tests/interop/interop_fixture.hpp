#pragma once
// The base of every live interop test: a fresh directory (SKYNET_LAB_RUN of the Lua
// nodes goes inside), the skynet peer found (or the test skipped, saying why), and the
// helpers the cases share: Lua nodes, lab client runs, value comparison as Lua sees it.
// Header-only.
//
// The cases, a file each: interop_basic_test.cpp (the peer's generic cases against the
// examples' node), cpp_calls_lua_test.cpp, upgrade_bench_test.cpp, cluster_names_test.cpp,
// console_shapes_test.cpp (the debug console compared by shape: a Lua node of role
// "console", start_server(tag, name, {}, "console") giving its console_port, beside a
// cppskynet node from start_supervised with a debug_console), trace_test.cpp (a trace
// crossing Lua -> C++ -> Lua: start_server, start_supervised with a relay to it, a lab
// client case with trace=true; the logs read with lua_node::wait_for and
// supervised_node::sup().wait_for).

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/wire/lua_value.hpp"
#include "tests/interop/cpp_nodes.hpp"
#include "tests/interop/skynet_peer.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::interop {

/// True when `a` and `b` are the same value to Lua after skynet.unpack: tables compare as
/// sets of (key, value) pairs (the array part as keys 1..N, nil values dropped, the last
/// of duplicate keys wins), so a table echoed by a Lua node, which packs it again in its
/// own order and may move keys between array and hash part, equals what was sent. Other
/// values compare as lua_value does: integer and real distinct, reals by bit pattern
/// (-0.0 is not 0.0, NaN equals NaN). Tables used as keys are not supported.
inline bool lua_same(const lua_value& a, const lua_value& b);

namespace detail {
// The keys of `t` whose value Lua sees as not nil, each once.
inline std::vector<lua_value> live_keys(const lua_table& t) {
  std::vector<lua_value> keys;
  const auto add = [&](const lua_value& k) {
    if (t.find(k) == nullptr) return;
    for (const auto& seen : keys) {
      if (seen == k) return;
    }
    keys.push_back(k);
  };
  for (std::size_t i = 0; i < t.array.size(); ++i) add(lua_value(static_cast<std::int64_t>(i + 1)));
  for (const auto& [k, v] : t.hash) add(k);
  return keys;
}
}  // namespace detail

inline bool lua_same(const lua_value& a, const lua_value& b) {
  if (!a.is_table() || !b.is_table()) return a == b;
  const auto keys = detail::live_keys(a.as_table());
  if (keys.size() != detail::live_keys(b.as_table()).size()) return false;
  for (const auto& k : keys) {
    const lua_value* bv = b.as_table().find(k);
    if (bv == nullptr || !lua_same(*a.as_table().find(k), *bv)) return false;
  }
  return true;
}

/// Renders values for a failure message (long strings shortened).
inline std::string describe(const std::vector<lua_value>& v) {
  std::string out = "(";
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string s = v[i].debug_string();
    if (s.size() > 200) s = s.substr(0, 200) + "...(" + std::to_string(s.size()) + " chars)";
    out += (i == 0 ? "" : ", ") + s;
  }
  return out + ")";
}

/// The fixture: owns every node it starts and stops them all in TearDown (also after a
/// failed assertion), the supervised ones first, checking their output for sanitizer reports.
class interop_test : public test::temp_dir_test {
 protected:
  void SetUp() override {
    temp_dir_test::SetUp();
    auto found = look_for_peer(dir_);
    if (found.absent) GTEST_SKIP() << found.why;
    ASSERT_TRUE(found.peer.has_value()) << found.why;
    peer_ = *found.peer;
    fs::create_directories(lab_run());
  }
  void TearDown() override {
    for (auto& n : cpp_nodes_) {
      const auto st = n->stop();
      const std::string out = n->output();
      EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "the supervisor did not stop cleanly\n" << out;
      EXPECT_EQ(out.find("Sanitizer"), std::string::npos) << out;
      EXPECT_EQ(out.find("runtime error:"), std::string::npos) << out;  // UBSan
    }
    cpp_nodes_.clear();
    lua_nodes_.clear();  // SIGKILL
    temp_dir_test::TearDown();
  }

  /// SKYNET_LAB_RUN of every Lua node of this test.
  fs::path lab_run() const { return dir_ / "lab-run"; }
  /// Where the lab client or bench tagged `tag` writes its JSONL (--out).
  fs::path out_of(const std::string& tag) const { return dir_ / (tag + ".jsonl"); }

  /// A Lua node of any role (skynode ARGS...), its log in DIR/TAG.log.
  lua_node& start_lua(const std::string& tag, std::vector<std::string> args) {
    lua_nodes_.push_back(std::make_unique<lua_node>(peer_, lab_run(), dir_ / (tag + ".log"), std::move(args)));
    return *lua_nodes_.back();
  }
  /// A lab server started by start_lua_server, owned by the fixture.
  struct server_ref {
    lua_node* node = nullptr;  ///< nullptr (and a test failure) if it did not start
    std::uint16_t port = 0;
    std::uint16_t console_port = 0;  ///< role "console" only
  };
  server_ref start_server(const std::string& tag, const std::string& name, const std::vector<std::string>& extra = {},
                          const std::string& role = "server") {
    lua_server s = start_lua_server(peer_, dir_, tag, name, extra, role);
    EXPECT_TRUE(s.node != nullptr) << s.error;
    if (s.node == nullptr) return {};
    lua_nodes_.push_back(std::move(s.node));
    return {lua_nodes_.back().get(), s.port, s.console_port};
  }
  /// A node under its supervisor, config in DIR/TAG/node.yaml (written by `config`).
  supervised_node* start_supervised(const std::string& tag, const std::string& config,
                                    const std::vector<std::string>& env = {}) {
    fs::create_directories(dir_ / tag);
    std::ofstream(dir_ / tag / "node.yaml") << config << supervisor_keys(dir_ / tag);
    return adopt(std::make_unique<supervised_node>(dir_ / tag, env));
  }
  /// start_example_node() owned by the fixture.
  supervised_node* start_example() { return adopt(start_example_node(dir_)); }

  /// Runs a lab client to its end (within `limit`); its log in `log`, for failure messages.
  lab_report run_lab_client(const std::string& tag, const std::vector<std::string>& args, std::string& log,
                            std::chrono::milliseconds limit) {
    lua_node& client = start_lua(tag, args);
    const auto st = client.wait_exit(limit);
    log = client.output();
    if (!st) log += "\n(the client was still running after " + std::to_string(limit.count()) + " ms)";
    return lab_report::from(read_jsonl(out_of(tag)));
  }

  skynet_peer peer_;

 private:
  supervised_node* adopt(std::unique_ptr<supervised_node> n) {
    EXPECT_TRUE(n->error().empty()) << n->error();
    cpp_nodes_.push_back(std::move(n));
    return cpp_nodes_.back()->error().empty() ? cpp_nodes_.back().get() : nullptr;
  }

  std::vector<std::unique_ptr<supervised_node>> cpp_nodes_;
  std::vector<std::unique_ptr<lua_node>> lua_nodes_;
};

}  // namespace csk::interop
