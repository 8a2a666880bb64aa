#include "tools/cli/ops.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/config/load_config.hpp"
#include "supervisor/control.hpp"
#include "worker/console_text.hpp"

namespace csk::cli {

namespace {

using nlohmann::json;
using steady = std::chrono::steady_clock;

struct options {
  std::string verb;
  std::string config;  // -c
  std::string socket;  // --socket
  bool json_out = false;
  std::optional<std::chrono::milliseconds> timeout;
  std::string worker;  // upgrade --worker
  std::vector<std::string> words;  // console: the line, if given on the command line
};

int usage(const std::string& why) {
  std::cerr << "cppskynet: " << why << "\n" << "usage:\n" << ops_usage();
  return exit_usage;
}

std::string dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// A JSON value as a table cell: strings bare, null/missing "-".
std::string cell(const json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  return dump(*it);
}

std::string format_uptime(const json& obj) {
  if (!obj.is_object()) return "-";
  auto it = obj.find("uptime_s");
  if (it == obj.end() || !it->is_number()) return cell(obj, "uptime_s");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0) return dump(*it);
  const auto s = static_cast<long long>(v);
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
  }
  return buf;
}

// Prints rows as aligned columns, two spaces apart, indented by two.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line = " ";
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += " " + r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 1, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  }
}

// The entity stores' journals (the serving worker's last report), and a loud line for a
// recovery that stopped at a bad record.
void print_stores(const json& s) {
  const json none = json::array();
  const json& stores = s.is_object() && s.contains("stores") && s["stores"].is_array() ? s["stores"] : none;
  if (stores.empty()) return;
  std::cout << "entity stores:\n";
  std::vector<std::vector<std::string>> rows{
      {"ID", "ENTITIES", "JOURNAL", "SINCE CKPT", "CHECKPOINTS", "LAST CKPT", "RECOVERED", "RECOVERY"}};
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto mb = [](const json& v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v.is_number() ? v.get<double>() / 1048576.0 : 0.0);
    return std::string(b);
  };
  for (const auto& e : stores) {
    std::string last = "-";
    if (e.value("last_checkpoint_unix_ms", 0LL) > 0) {
      last = std::to_string((now_ms - e["last_checkpoint_unix_ms"].get<long long>()) / 1000) + "s ago";
    }
    if (e.value("checkpointing", false)) last += " (running)";
    char took[32];
    std::snprintf(took, sizeof took, "%.1f ms", e.value("recovery_ms", 0.0));
    rows.push_back({cell(e, "id"), cell(e, "entities"),
                    mb(e.value("journal_bytes", json(0))) + "/" + mb(e.value("journal_capacity", json(0))) + " MB",
                    cell(e, "records_since_checkpoint"), cell(e, "checkpoints"), last,
                    cell(e, "recovered_entities") + " + " + cell(e, "recovered_records") + " records", took});
  }
  print_table(std::cout, rows);
  for (const auto& e : stores) {
    if (e.value("recovery_stopped_at_bad_record", false)) {
      std::cout << "RECOVERY OF " << cell(e, "id") << " STOPPED AT A BAD RECORD: " << cell(e, "recovery_note") << "\n";
    }
  }
}

void print_status(const json& s) {
  std::string head = "supervisor pid " + cell(s, "pid");
  if (s.is_object() && s.contains("version")) head += ", version " + cell(s, "version");
  if (s.is_object() && s.contains("config")) head += ", config " + cell(s, "config");
  std::cout << head << "\n";

  const json none = json::array();
  const json& listeners = s.is_object() && s.contains("listeners") && s["listeners"].is_array() ? s["listeners"] : none;
  if (listeners.empty()) {
    std::cout << "listeners: none\n";
  } else {
    std::cout << "listeners:\n";
    std::vector<std::vector<std::string>> rows{{"NAME", "ADDRESS", "FD"}};
    for (const auto& l : listeners) rows.push_back({cell(l, "name"), cell(l, "address"), cell(l, "fd")});
    print_table(std::cout, rows);
  }
  const json& workers = s.is_object() && s.contains("workers") && s["workers"].is_array() ? s["workers"] : none;
  if (workers.empty()) {
    std::cout << "workers: none\n";
  } else {
    std::cout << "workers:\n";
    std::vector<std::vector<std::string>> rows{{"PID", "GEN", "STATE", "UPTIME", "RESTARTS", "LAST EXIT"}};
    for (const auto& w : workers) {
      rows.push_back({cell(w, "pid"), cell(w, "generation"), cell(w, "state"), format_uptime(w),
                      cell(w, "restarts"), cell(w, "last_exit")});
    }
    print_table(std::cout, rows);
  }
  if (s.is_object() && s.contains("parked") && s["parked"].is_string()) {
    std::cout << "PARKED: " << s["parked"].get<std::string>()
              << "\n  (the entity state is kept; `cppskynet upgrade [--worker PATH]` starts a worker)\n";
  }
  print_stores(s);
}

// The other keys of a reply, one per line (reload, stop).
void print_fields(const json& r) {
  if (!r.is_object()) {
    if (!r.is_null()) std::cout << "  " << dump(r) << "\n";
    return;
  }
  for (const auto& [k, v] : r.items()) {
    if (k == "ok") continue;
    std::cout << "  " << k << ": " << (v.is_string() ? v.get<std::string>() : dump(v)) << "\n";
  }
}

// An {"error": ...} reply: its text, else nullopt.
std::optional<std::string> reply_error(const json& r) {
  if (!r.is_object()) return std::nullopt;
  auto it = r.find("error");
  if (it == r.end() || it->is_null()) return std::nullopt;
  return it->is_string() ? it->get<std::string>() : dump(*it);
}

// --- the control socket's path ----------------------------------------------------

// The config's supervisor.control_socket (load_config_file has made a relative one relative
// to the config's directory; the default is cppskynet.sock there), made absolute.
std::string socket_for_config(const node_config& cfg) {
  namespace fs = std::filesystem;
  const fs::path p = cfg.supervisor.control_socket;
  std::error_code ec;
  const fs::path abs = fs::absolute(p, ec);
  return (ec ? p : abs).lexically_normal().string();
}

// Resolves the socket for status/stop/reload; sets rc on failure.
std::optional<std::string> resolve_socket(const options& o, int& rc) {
  if (!o.socket.empty()) return o.socket;
  if (o.config.empty()) {
    rc = usage(o.verb + " needs -c node.yaml or --socket PATH");
    return std::nullopt;
  }
  auto cfg = load_config_file(o.config);
  if (!cfg) {
    std::cerr << "cppskynet: " << o.config << ": " << cfg.error() << "\n";
    rc = exit_failed;
    return std::nullopt;
  }
  return socket_for_config(*cfg);
}

// --- stop: waiting for the supervisor to go ------------------------------------------

bool pid_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  // A zombie has exited: only its parent's wait() is missing. Read with read(2): the file
  // of a process that ends meanwhile fails with ESRCH, which an ifstream turns into an
  // exception (libstdc++'s underflow throws on a read error; `stop` aborted on it).
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  const int read_errno = errno;
  ::close(fd);
  if (n < 0) return read_errno == ESRCH;
  const std::string text(buf, static_cast<std::size_t>(n));
  const auto paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return false;
  const char state = text[paren + 2];
  return state == 'Z' || state == 'X';
}

// --- the verbs -------------------------------------------------------------------------

int call_verb(const options& o) {
  int rc = exit_ok;
  auto path = resolve_socket(o, rc);
  if (!path) return rc;
  const bool is_stop = o.verb == "stop";
  const bool is_upgrade = o.verb == "upgrade";
  auto total = o.timeout.value_or(is_stop ? std::chrono::milliseconds(30000) : std::chrono::milliseconds(10000));
  json request = {{"cmd", o.verb}, {"args", json::object()}};
  if (is_upgrade) {
    // --timeout is the upgrade's budget (the supervisor's default when absent); we wait
    // for the verdict a while longer: the supervisor always answers, after its grace.
    if (o.timeout) request["args"]["timeout_ms"] = static_cast<std::uint64_t>(o.timeout->count());
    if (!o.worker.empty()) {
      std::error_code ec;
      request["args"]["worker"] = std::filesystem::absolute(o.worker, ec).lexically_normal().string();
    }
    total = o.timeout.value_or(std::chrono::milliseconds(30000)) + std::chrono::milliseconds(30000);
  }
  const auto deadline = steady::now() + total;

  auto r = supervisor::control_call_ex(*path, request, total);
  json reply;
  if (!r) {
    if (r.error().why == supervisor::control_error::kind::unreachable) {
      std::cerr << "cppskynet: " << r.error().text << "\n";
      return exit_unreachable;
    }
    // A supervisor that is stopping may close the socket before it answers.
    if (!(is_stop && r.error().why == supervisor::control_error::kind::closed)) {
      std::cerr << "cppskynet: " << r.error().text << "\n";
      return exit_failed;
    }
  } else {
    reply = std::move(*r);
    if (auto err = reply_error(reply)) {
      if (o.json_out) std::cout << dump(reply) << "\n";
      std::cerr << "cppskynet: " << o.verb << ": " << *err << "\n";
      return exit_failed;
    }
  }

  if (is_stop) {
    std::optional<pid_t> pid;
    if (reply.is_object() && reply.contains("pid") && reply["pid"].is_number_integer()) {
      const auto n = reply["pid"].get<long long>();
      if (n > 0 && n <= 0x3fffffff) pid = static_cast<pid_t>(n);  // never 0 or -1: kill() means groups there
    }
    for (;;) {
      const bool gone = !supervisor::control_answers(*path) && (!pid || pid_gone(*pid));
      if (gone) break;
      if (steady::now() >= deadline) {
        std::cerr << "cppskynet: the supervisor at " << *path << " is still running after "
                  << std::chrono::duration<double>(total).count() << " s\n";
        return exit_failed;
      }
      ::poll(nullptr, 0, 50);
    }
  }

  if (o.json_out) {
    std::cout << dump(reply) << "\n";
  } else if (o.verb == "status") {
    print_status(reply);
  } else if (is_upgrade) {
    const auto us = [&](const char* key) {
      if (!reply.contains(key) || !reply[key].is_number()) return std::string("-");
      char text[32];
      std::snprintf(text, sizeof text, "%.3f ms", reply[key].get<double>() / 1000.0);
      return std::string(text);
    };
    std::cout << "upgrade: ok: gen " << cell(reply, "from_generation") << " (pid " << cell(reply, "from_pid")
              << ") -> gen " << cell(reply, "to_generation") << " (pid " << cell(reply, "to_pid") << ")\n"
              << "  worker       " << cell(reply, "worker") << "\n"
              << "  total        " << us("total_us") << "\n"
              << "  pre-copy     " << us("precopy_us") << "\n"
              << "  frozen       " << us("frozen_us") << "  (no request read meanwhile)\n"
              << "  entities     " << cell(reply, "entities") << " copied, " << cell(reply, "delta_entities")
              << " in deltas (" << cell(reply, "final_delta") << " frozen), " << cell(reply, "state_bytes") << " bytes\n"
              << "  connections  " << cell(reply, "connections") << " handed over\n";
  } else if (is_stop) {
    std::cout << "stopped" << (reply.is_object() && reply.contains("pid") ? " (supervisor pid " + cell(reply, "pid") + ")" : "")
              << "\n";
  } else {
    std::cout << o.verb << ": ok\n";
    print_fields(reply);
  }
  return exit_ok;
}

// --- console: skynet's debug console verbs, through the supervisor ----------------------

// One line: prints the answer as skynet's console does (the lines, then <CMD OK> or the
// error and <CMD Error>), or with --json the reply as it came. True when it was answered
// without an error.
bool console_line(const std::string& path, const std::string& line, bool json_out) {
  json request = {{"cmd", "console"}, {"args", {{"line", line}}}};
  const bool long_wait = line.rfind("upgrade", 0) == 0;
  auto r = supervisor::control_call_ex(path, request, std::chrono::milliseconds(long_wait ? 3700000 : 60000));
  if (!r) {
    std::cerr << "cppskynet: " << r.error().text << "\n";
    return false;
  }
  const json& reply = *r;
  if (json_out) {
    std::cout << dump(reply) << "\n";
  } else {
    const std::size_t start = line.find_first_not_of(" \t");
    const std::string verb = start == std::string::npos ? "" : line.substr(start, line.find_first_of(" \t", start) - start);
    std::cout << console::render_text(console::from_reply(verb, reply)) << std::flush;
  }
  return !reply_error(reply).has_value();
}

int console_verb(const options& o) {
  int rc = exit_ok;
  auto path = resolve_socket(o, rc);
  if (!path) return rc;
  if (!o.words.empty()) {
    std::string line;
    for (const auto& w : o.words) {
      const bool quote = w.find_first_of(" \t\"") != std::string::npos || w.empty();
      std::string word = w;
      if (quote) {
        std::string q = "\"";
        for (char c : w) {
          if (c == '"' || c == '\\') q.push_back('\\');
          q.push_back(c);
        }
        word = q + "\"";
      }
      line += (line.empty() ? "" : " ") + word;
    }
    return console_line(*path, line, o.json_out) ? exit_ok : exit_failed;
  }
  // Interactive: one line per request, until end of input (skynet's console over a pipe
  // works the same: `echo list | cppskynet console -c node.yaml`).
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  bool all_ok = true;
  std::string line;
  for (;;) {
    if (tty) std::cout << "cppskynet> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line == "quit" || line == "exit") break;
    all_ok = console_line(*path, line, o.json_out) && all_ok;
  }
  return all_ok ? exit_ok : exit_failed;
}

// Each line of a loader error, prefixed with the file it came from.
void add_errors(std::vector<std::string>& out, const std::string& file, const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    out.push_back(line.rfind(file, 0) == 0 ? line : file + ": " + line);
  }
}

int check_verb(const options& o) {
  if (o.config.empty()) return usage("check needs -c node.yaml");
  if (!o.socket.empty()) return usage("check takes no --socket");
  std::vector<std::string> errors;
  json services = json::array();
  json listeners = json::array();
  std::string socket;

  auto cfg = load_config_file(o.config);
  if (!cfg) {
    add_errors(errors, o.config, cfg.error());
  } else {
    for (const auto& s : cfg->services) {
      json names = json::array();
      if (!s.name.empty()) names.push_back(s.name);
      for (const auto& n : s.names) names.push_back(n);
      services.push_back({{"type", s.type}, {"names", names}, {"instances", s.instances}});
    }
    // The node table: every problem in it, with its file.
    bool table_ok = true;
    if (!cfg->cluster.names_file.empty()) {
      auto t = load_cluster_names_file(cfg->cluster.names_file);
      if (!t) {
        table_ok = false;
        add_errors(errors, cfg->cluster.names_file, t.error());
      }
    }
    // The listeners the supervisor would bind (stops at the first problem; with a broken
    // table it would only repeat the table's error).
    if (table_ok) {
      auto ls = listeners_of(*cfg);
      if (!ls) {
        add_errors(errors, o.config, ls.error());
      } else {
        for (const auto& l : *ls) {
          const bool v6 = l.host.find(':') != std::string::npos;
          listeners.push_back({{"name", l.name},
                               {"address", (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port)}});
        }
      }
    }
    socket = socket_for_config(*cfg);
    if (socket.size() > 107) {
      errors.push_back(o.config + ": supervisor.control_socket: the path " + socket + " is " +
                       std::to_string(socket.size()) + " bytes; a Unix socket path has at most 107");
    }
  }

  if (o.json_out) {
    json out = {{"ok", errors.empty()}, {"config", o.config}};
    if (errors.empty()) {
      out["services"] = services;
      out["listeners"] = listeners;
      out["control_socket"] = socket;
    } else {
      out["errors"] = errors;
    }
    std::cout << dump(out) << "\n";
  } else if (errors.empty()) {
    std::cout << "ok: " << o.config << "\n";
    std::cout << "services: " << services.size() << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : services) {
      std::string names;
      for (const auto& n : s["names"]) names += (names.empty() ? "" : " ") + n.get<std::string>();
      const int instances = s["instances"].get<int>();
      rows.push_back({s["type"].get<std::string>(), names.empty() ? "-" : names,
                      instances == 1 ? "" : "x" + std::to_string(instances)});
    }
    print_table(std::cout, rows);
    std::cout << "listeners: " << listeners.size() << "\n";
    rows.clear();
    for (const auto& l : listeners) rows.push_back({l["name"].get<std::string>(), l["address"].get<std::string>()});
    print_table(std::cout, rows);
    std::cout << "control socket: " << socket << "\n";
  } else {
    std::cerr << "cppskynet check: " << o.config << ": " << errors.size() << (errors.size() == 1 ? " error" : " errors")
              << "\n";
    for (const auto& e : errors) std::cerr << "  " << e << "\n";
  }
  return errors.empty() ? exit_ok : exit_failed;
}

std::optional<std::chrono::milliseconds> parse_seconds(const std::string& text) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || !(v > 0) || v > 86400.0 * 365) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(v * 1000)));
}

}  // namespace

bool is_ops_verb(std::string_view verb) {
  return verb == "status" || verb == "stop" || verb == "reload" || verb == "check" || verb == "upgrade" ||
         verb == "console";
}

const char* ops_usage() {
  return "  cppskynet status [-c node.yaml | --socket PATH] [--json] [--timeout S]\n"
         "  cppskynet stop   [-c node.yaml | --socket PATH] [--json] [--timeout S]  (default 30 s)\n"
         "  cppskynet reload [-c node.yaml | --socket PATH] [--json] [--timeout S]\n"
         "  cppskynet check  -c node.yaml [--json]\n"
         "  cppskynet upgrade [-c node.yaml | --socket PATH] [--worker PATH] [--timeout S] [--json]\n"
         "                   hand the node over to a new worker (default: the same binary) without\n"
         "                   downtime; exits 0 once it serves, 1 if the upgrade was rolled back\n"
         "  cppskynet console [-c node.yaml | --socket PATH] [--json] [VERB ARGS...]\n"
         "                   skynet's debug console (its text; --json: the answer as JSON): list, stat,\n"
         "                   mem, info, call, send, ping, kill, start, netstat, journal, checkpoint [ID],\n"
         "                   generations, upgrade, help for all; without a verb, one line per request\n"
         "                   from stdin\n";
}

int run_ops(const std::vector<std::string>& args) {
  options o;
  o.verb = args.at(0);
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if ((a == "-c" || a == "--config") && has_value) {
      o.config = args[++i];
    } else if (a == "--socket" && has_value) {
      o.socket = args[++i];
    } else if (a == "--timeout" && has_value) {
      o.timeout = parse_seconds(args[++i]);
      if (!o.timeout) return usage("--timeout needs a positive number of seconds");
    } else if (a == "--json") {
      o.json_out = true;
    } else if (a == "--worker" && has_value && o.verb == "upgrade") {
      o.worker = args[++i];
    } else if (o.verb == "console" && (!o.words.empty() || a.empty() || a[0] != '-')) {
      o.words.push_back(a);  // the console line: everything from the verb on
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage:\n" << ops_usage();
      return exit_ok;
    } else {
      return usage("unknown argument " + a + " for " + o.verb);
    }
  }
  if (o.verb == "check") return check_verb(o);
  if (o.verb == "console") return console_verb(o);
  return call_verb(o);
}

}  // namespace csk::cli
