#pragma once
// Lua values as everyday JSON, for people at a shell (`cppskynet call ... 1 "two" '{"k":3}'`).
// Unlike the vectors' notation (value_json.hpp) this is lossy on purpose:
//   nil <-> null, boolean <-> true/false, integer <-> JSON integer, real <-> JSON number
//   with a fraction or exponent (1.0 stays a real), string <-> string (bytes that are
//   not UTF-8 print as {"hex": "..."}), table with only an array part <-> array,
//   other tables <-> object (non-string keys printed as their JSON text; array
//   elements under keys "1", "2", ...). NaN and infinities print as "nan", "inf", "-inf".

#include <string_view>

#include "common/base/result.hpp"
#include "common/wire/lua_value.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::tools {

json to_plain_json(const lua_value& v);
result<lua_value, std::string> from_plain_json(const json& j);

/// A command-line argument: JSON if it parses as JSON (42, 4.5, true, null, "x",
/// [1,2], {"k":1}), otherwise the word itself as a string.
lua_value parse_cli_arg(std::string_view arg);

}  // namespace csk::tools
