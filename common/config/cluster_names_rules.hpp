#pragma once
// The rules every node table loader applies (YAML in load_config.cpp, Lua in
// cluster_names_lua.cpp), with the same messages, so both forms refuse the same entries
// the same way. Defined in load_config.cpp. Internal to csk::config.

#include <string>
#include <string_view>

#include "common/config/config.hpp"

namespace csk::config_detail {

/// A node name: 1..255 bytes, not starting with "__".
[[nodiscard]] bool valid_node_name(std::string_view name);

/// What valid_node_name requires, for messages: `a node name must be ...`.
[[nodiscard]] std::string node_name_rule();

/// Parses a node table address ("host:port", port 1..65535) into `out`; returns what is
/// wrong with it ("" when nothing is), as `the port must be between 1 and 65535`.
[[nodiscard]] std::string node_address_problem(std::string_view text, cluster_node_address& out);

/// `"text"`, cut to 40 bytes with "..." (how messages show a value).
[[nodiscard]] std::string quote(const std::string& text);

/// `path (line L): message`, or `path: message` when line is 0: one problem line.
[[nodiscard]] std::string problem_text(const std::string& path, int line, const std::string& message);

}  // namespace csk::config_detail
