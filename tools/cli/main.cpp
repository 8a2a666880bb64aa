// cppskynet: command-line tools for a skynet cluster.
//
//   cppskynet call NODE TARGET [ARG...]   one cluster call; prints the reply as JSON
//   cppskynet send NODE TARGET [ARG...]   one push (waits until the peer has read it)
//   cppskynet status|stop|reload|check ...  the operator verbs (ops.hpp)
//   cppskynet run -c node.yaml [--daemon]   the supervisor (supervisor/supervisor.hpp)
//
// NODE is host:port, or a node name looked up in --names clustername.lua (or its YAML form).
// TARGET is @name, .name, :0000000a, or a handle number (10, 0x0a).
// ARGs are JSON (42, 1.5, true, null, "str", [1,2], {"k":1}) or bare words (strings).
// Options (before NODE): --names FILE, --timeout MS (default 5000).
// Exit codes: 0 ok; 1 the call failed (the error text on stderr); 2 usage.

#include <charconv>
#include <iostream>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "supervisor/supervisor.hpp"
#include "tools/cli/ops.hpp"
#include "tools/wire/plain_json.hpp"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

int usage(const std::string& why) {
  std::cerr << "cppskynet: " << why << "\n"
            << "usage: cppskynet call|send [--names FILE] [--timeout MS] NODE TARGET [ARG...]\n"
            << "  NODE    host:port, or a name from --names clustername.lua (or .yaml)\n"
            << "  TARGET  @name | .name | :0000000a | handle number\n"
            << "  ARG     JSON value or bare word\n"
            << "usage: cppskynet run -c node.yaml [--daemon]   (the supervisor)\n"
            << csk::cli::ops_usage();
  return exit_usage;
}

std::optional<csk::wire::target> parse_target(const std::string& t) {
  if (t.empty()) return std::nullopt;
  if (t[0] == '@' || t[0] == '.' || t[0] == ':') return csk::wire::target::named(t);
  std::uint32_t h = 0;
  const bool hex = t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X');
  const char* b = t.data() + (hex ? 2 : 0);
  auto r = std::from_chars(b, t.data() + t.size(), h, hex ? 16 : 10);
  if (r.ec != std::errc{} || r.ptr != t.data() + t.size()) return std::nullopt;
  return csk::wire::target::handle(h);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") return usage(args.empty() ? "missing command" : "help");
  const std::string cmd = args[0];
  if (csk::cli::is_ops_verb(cmd)) return csk::cli::run_ops(args);
  if (cmd == "run") return csk::supervisor::run_command(args);  // supervisor/supervisor.hpp
  if (cmd != "call" && cmd != "send") return usage("unknown command " + cmd);
  std::string names_file;
  int timeout_ms = 5000;
  std::size_t i = 1;
  for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
    if (args[i] == "--names" && i + 1 < args.size()) {
      names_file = args[++i];
    } else if (args[i] == "--timeout" && i + 1 < args.size()) {
      timeout_ms = std::atoi(args[++i].c_str());
      if (timeout_ms <= 0) return usage("--timeout needs a positive number of milliseconds");
    } else {
      return usage("unknown option " + args[i]);
    }
  }
  if (args.size() - i < 2) return usage("need NODE and TARGET");
  const std::string node_arg = args[i];
  auto target = parse_target(args[i + 1]);
  if (!target) return usage("bad TARGET " + args[i + 1]);
  csk::actor::values call_args;
  for (std::size_t k = i + 2; k < args.size(); ++k) call_args.push_back(csk::tools::parse_cli_arg(args[k]));

  // The node table: a file, or one entry for host:port.
  csk::cluster_names table;
  std::string node_name = node_arg;
  if (!names_file.empty()) {
    auto t = csk::load_cluster_names_file(names_file);
    if (!t) {
      std::cerr << "cppskynet: " << t.error() << "\n";
      return exit_usage;
    }
    table = std::move(*t);
  }
  if (table.nodes.find(node_arg) == table.nodes.end()) {
    auto hp = csk::parse_host_port(node_arg, false);
    if (!hp) return usage("NODE " + node_arg + " is neither host:port nor a name in the node table");
    node_name = "target";
    table.nodes[node_name] = *hp;
  }

  csk::log_config quiet;
  quiet.level = "warn";
  csk::init_logging(quiet, "cli");
  csk::actor::runtime_options ro;
  ro.threads = 1;
  ro.call_timeout = std::chrono::milliseconds(timeout_ms);
  csk::actor::runtime rt(ro);
  csk::net::net net(1);
  csk::cluster::node cluster(rt, net, csk::cluster::node_options{});
  cluster.reload(table);
  rt.start();
  net.start();

  int rc = exit_ok;
  if (cmd == "send") {
    if (!cluster.send(node_name, *target, call_args)) {
      std::cerr << "cppskynet: cannot send to " << node_arg << "\n";
      rc = exit_failed;
    } else {
      // A name query behind the push on the same connection: its answer proves the peer
      // has read the push (frames are handled in order); "name not found" is expected.
      auto r = cluster.call(node_name, csk::wire::target::handle(0), {""}).get();
      if (!r && r.error().text != "name not found") {
        std::cerr << "cppskynet: " << r.error().text << "\n";
        rc = exit_failed;
      }
    }
  } else {
    auto r = cluster.call(node_name, *target, std::move(call_args)).get();
    if (!r) {
      std::cerr << "cppskynet: " << r.error().text << "\n";
      rc = exit_failed;
    } else {
      csk::tools::json out = csk::tools::json::array();
      for (const auto& v : *r) out.push_back(csk::tools::to_plain_json(v));
      std::cout << out.dump(-1, ' ', false, csk::tools::json::error_handler_t::replace) << "\n";
    }
  }
  net.stop();
  rt.shutdown();
  return rc;
}
