#pragma once
// The JSON value notation of the interop vectors (tests/data/interop/README.md):
//
//   {"t":"nil"}  {"t":"bool","v":true}
//   {"t":"int","v":"-1","enc":"dword"}                      v is a decimal string
//   {"t":"float","v":"3.5","bits":"400c000000000000","enc":"real"}
//   {"t":"str","len":5,"enc":"short","hex":"68656c6c6f","text":"hello"}
//       text only for printable ASCII; over 256 bytes "sha1" + "head_hex" replace "hex"
//   {"t":"table","array":[...],"hash":[[k,v],...],"array_len_enc":"cookie|int:byte|..."}
//   {"t":"lightuserdata","v":"0x7f4fdc0c1ff0"}
//
// Reading also accepts the lighter forms of behaviour.jsonl / seri_reject.jsonl:
// no "enc", integer "v" as a JSON number, tables as {"t":"table","pairs":[[k,v],...]},
// and light userdata as "userdata: 0x...".

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::tools {

using json = nlohmann::ordered_json;

/// Python-repr style rendering of a double ("3.5", "1.0", "1e+300", "-0.0", "inf", "nan").
std::string format_real(double d);

/// The notation of one value. Encodings come from the wire when the value was
/// decoded, else they are the ones the encoder would choose.
json value_to_json(const lua_value& v);
json values_to_json(std::span<const lua_value> values);

/// Parses the notation. Errors name the JSON path ("values[2].hash[0][1]: ...").
result<lua_value, std::string> value_from_json(const json& j, const std::string& path = "value");
result<std::vector<lua_value>, std::string> values_from_json(const json& j,
                                                             const std::string& path = "values");

}  // namespace csk::tools
