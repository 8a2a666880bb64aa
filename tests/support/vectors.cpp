#include "tests/support/vectors.hpp"

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace csk::test {

std::string interop_path(const std::string& rel) { return std::string(CSK_TEST_DATA_DIR) + "/interop/" + rel; }

byte_buffer read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return byte_buffer(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<vector_entry> load_vectors(const std::string& file) {
  std::ifstream in(interop_path(file));
  if (!in) throw std::runtime_error("cannot open " + interop_path(file));
  std::vector<vector_entry> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    vector_entry e;
    e.file = file;
    e.raw = json::parse(line);
    e.name = e.raw.at("name").get<std::string>();
    e.direction = e.raw.value("direction", "");
    e.meaning = e.raw.value("meaning", json::object());
    if (e.raw.contains("hex") && e.raw["hex"].is_string()) {
      if (!from_hex(e.raw["hex"].get<std::string>(), e.bytes)) throw std::runtime_error(e.name + ": bad hex");
      e.has_bytes = true;
    } else if (e.raw.contains("bin") && e.raw["bin"].is_string()) {
      e.bytes = read_file(interop_path(e.raw["bin"].get<std::string>()));
      if (e.bytes.size() != e.raw.at("bin_len").get<std::size_t>()) {
        throw std::runtime_error(e.name + ": bin_len does not match " + e.raw["bin"].get<std::string>());
      }
      const auto head = e.raw.value("hex_head", std::string());
      if (to_hex(e.bytes).compare(0, head.size(), head) != 0) throw std::runtime_error(e.name + ": hex_head differs");
      e.has_bytes = true;
    }
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

// Whether two notation keys denote the same Lua key (tables are never equal keys:
// Lua compares them by identity).
bool same_key(const json& a, const json& b) {
  if (a.value("t", "") != b.value("t", "") || a.value("t", "") == "table") return false;
  for (const char* f : {"v", "bits", "hex", "sha1", "len"}) {
    if (a.contains(f) && b.contains(f) && a[f] != b[f]) return false;
  }
  return true;
}

// The table as Lua sees it: list of [key, value] with array keys made explicit.
json lua_view_pairs(const json& table) {
  json pairs = json::array();
  auto put = [&](const json& k, const json& v) {
    if (v.value("t", "") == "nil") {
      // rawset(t, k, nil) removes the key
      for (auto it = pairs.begin(); it != pairs.end(); ++it) {
        if (same_key(k, (*it)[0])) {
          pairs.erase(it);
          break;
        }
      }
      return;
    }
    for (auto& p : pairs) {
      if (same_key(k, p[0])) {
        p[1] = v;
        return;
      }
    }
    pairs.push_back(json::array({k, v}));
  };
  if (table.contains("array")) {
    for (std::size_t i = 0; i < table["array"].size(); ++i) {
      put(json{{"t", "int"}, {"v", std::to_string(i + 1)}}, table["array"][i]);
    }
  }
  for (const char* part : {"hash", "pairs"}) {
    if (!table.contains(part)) continue;
    for (const auto& kv : table[part]) put(kv[0], kv[1]);
  }
  return pairs;
}

std::string match_pair_sets(const json& expected, const json& actual, const std::string& path) {
  if (expected.size() != actual.size()) {
    return path + ": " + std::to_string(actual.size()) + " pairs, expected " + std::to_string(expected.size());
  }
  std::vector<bool> used(actual.size(), false);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    bool found = false;
    for (std::size_t j = 0; j < actual.size() && !found; ++j) {
      if (used[j]) continue;
      if (match_value(expected[i][0], actual[j][0]).empty() && match_value(expected[i][1], actual[j][1]).empty()) {
        used[j] = true;
        found = true;
      }
    }
    if (!found) return path + "[" + std::to_string(i) + "]: no matching pair for " + expected[i].dump();
  }
  return {};
}

}  // namespace

std::string match_value(const json& expected, const json& actual, const std::string& path) {
  if (!expected.is_object() || !actual.is_object()) return path + ": not a value object";
  for (const auto& [key, ev] : expected.items()) {
    if (key == "pairs") {
      std::string m = match_pair_sets(lua_view_pairs(expected), lua_view_pairs(actual), path + ".pairs");
      if (!m.empty()) return m;
      continue;
    }
    if (!actual.contains(key)) return path + ": missing \"" + key + "\"";
    const json& av = actual[key];
    if (key == "array") {
      std::string m = match_values(ev, av, path + ".array");
      if (!m.empty()) return m;
    } else if (key == "hash") {
      if (ev.size() <= 1 && av.size() <= 1) {
        if (ev.size() != av.size()) return path + ".hash: size differs";
        for (std::size_t i = 0; i < ev.size(); ++i) {
          std::string m = match_value(ev[i][0], av[i][0], path + ".hash.key");
          if (m.empty()) m = match_value(ev[i][1], av[i][1], path + ".hash.value");
          if (!m.empty()) return m;
        }
      } else {
        std::string m = match_pair_sets(ev, av, path + ".hash");
        if (!m.empty()) return m;
      }
    } else if (key == "v" && expected.value("t", "") == "lightuserdata" && ev.is_string() && av.is_string()) {
      // seri_reject.jsonl prints light userdata as Lua's tostring: "userdata: 0x...".
      std::string e = ev.get<std::string>();
      if (e.rfind("userdata: ", 0) == 0) e.erase(0, 10);
      if (e != av.get<std::string>()) return path + ".v: " + av.dump() + ", expected " + ev.dump();
    } else if (ev != av) {
      return path + "." + key + ": " + av.dump() + ", expected " + ev.dump();
    }
  }
  return {};
}

std::string match_values(const json& expected, const json& actual, const std::string& path) {
  if (!expected.is_array() || !actual.is_array()) return path + ": not an array";
  if (expected.size() != actual.size()) {
    return path + ": " + std::to_string(actual.size()) + " values, expected " + std::to_string(expected.size());
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    std::string m = match_value(expected[i], actual[i], path + "[" + std::to_string(i) + "]");
    if (!m.empty()) return m;
  }
  return {};
}

}  // namespace csk::test
