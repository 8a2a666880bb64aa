#pragma once
// Reads skynet-shaped trace lines back out of captured logs (csk::capture_logs), for the
// trace tests of the runtime and the cluster. Header-only.
//
// A trace line's message is skynet's text: "[:0000000a] <TRACE tag> ns what"
// (actor::trace_line), after our log pattern's prefix.

#include <cstdint>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace csk::test {

struct trace_hop {
  std::string handle;  ///< ":0000000a"
  std::string tag;
  std::int64_t ns = 0;
  std::string what;
};

/// Every trace line of `log` whose tag is `tag` (all of them if `tag` is empty), in order.
inline std::vector<trace_hop> trace_hops(const std::string& log, std::string_view tag = {}) {
  static const std::regex line(R"(\[(:[0-9a-f]{8})\] <TRACE ([^>]*)> ([0-9]+) (.*)$)");
  std::vector<trace_hop> out;
  std::istringstream in(log);
  std::string text;
  while (std::getline(in, text)) {
    std::smatch m;
    if (!std::regex_search(text, m, line)) continue;
    if (!tag.empty() && m[2].str() != tag) continue;
    out.push_back(trace_hop{m[1].str(), m[2].str(), std::stoll(m[3].str()), m[4].str()});
  }
  return out;
}

/// The `what` of each hop, e.g. {"trace go", "call", "resume", "end"}.
inline std::vector<std::string> whats(const std::vector<trace_hop>& hops) {
  std::vector<std::string> out;
  for (const auto& h : hops) out.push_back(h.what);
  return out;
}

}  // namespace csk::test
