#pragma once
// The console's two renderings of one answer, as pure functions: skynet's debug console
// text (service/debug_console.lua, what `nc 127.0.0.1 8000` shows and scripts parse) and
// JSON (`cppskynet console --json`). The verbs themselves are in console.hpp; they produce
// an `answer` whose value is plain JSON, so the supervisor can relay it and the CLI can
// render it without the worker's code.
//
// skynet's text, as debug_console.lua prints it (print() joins its arguments with a tab
// and ends with "\n"; nothing is "\r\n"):
//   a string result      the string, one line
//   a table result       dump_list: one line per key, keys sorted as strings (so array
//                        keys go 1, 10, 11, 2, ...), "key\tvalue"; a value that is a table
//                        prints as format_table: "k:v" for each of its keys, sorted,
//                        joined by tabs
//   nil                  nothing
//   then                 "<CMD OK>", or on an error the error text and "<CMD Error>"
//   an unknown verb      "Invalid command, type help for command list", an empty line
//                        (skynet prints the nil error), "<CMD Error>"
// Numbers print as Lua 5.4's tostring: integers bare, floats with %.14g and ".0" when
// integral ("cpu:0.0"). Each verb's value becomes the table skynet would have printed
// (console.hpp lists the lines per verb).

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace csk::console {

/// One console line's answer, whatever renders it.
struct answer {
  std::string verb;      ///< the line's first word ("" for a line of blanks)
  bool ok = true;
  nlohmann::json value;  ///< ok: the verb's result (null: nothing to print); shapes in console.hpp
  std::string error;     ///< !ok: why, for the operator
};

/// What skynet's console says first on every connection (then "\n").
inline constexpr std::string_view greeting = "Welcome to skynet console";
/// skynet's answer to a verb it does not know (then an empty line and "<CMD Error>").
inline constexpr std::string_view invalid_command = "Invalid command, type help for command list";

/// skynet's text for an answer: its lines, then "<CMD OK>" or "<CMD Error>"; every line
/// ends with "\n".
std::string render_text(const answer& a);

/// The JSON text of the answer: {"ok":true,"answer":VALUE} or {"ok":false,"error":"..."}
/// (the supervisor's control reply for a console line has the same form).
std::string render_json(const answer& a);

/// The answer a control reply ({"ok","answer"} or {"ok":false,"error"}, or {"error"} from
/// the control socket itself) carries for a line whose verb is `verb`.
answer from_reply(std::string verb, const nlohmann::json& reply);

/// The table skynet would have printed for `verb`'s value (a string, an object, an
/// array or null), as JSON. Exposed for tests.
nlohmann::json skynet_table(std::string_view verb, const nlohmann::json& value);

/// skynet's dump_list of a table given as JSON (see the header comment); a string is one
/// line, null nothing.
std::string dump_list(const nlohmann::json& table);

/// Lua 5.4's tostring of a number: "3", "0.000439", "0.0", "1e+15".
std::string lua_number(const nlohmann::json& number);

/// skynet's bytes() (debug_console.lua): "" for 0 (the key is then left out), the count
/// below 1024, else "2.806640625K" or "1.5M".
std::string skynet_bytes(std::uint64_t n);

}  // namespace csk::console
