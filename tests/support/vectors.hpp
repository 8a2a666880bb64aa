#pragma once
// Loading the golden interop vectors (tests/data/interop, copied from
// shared/interop/vectors) and matching decoded values against their `meaning`.

#include <optional>
#include <string>
#include <vector>

#include "common/base/bytes.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::test {

using json = tools::json;

struct vector_entry {
  std::string file;  ///< e.g. "requests.jsonl"
  std::string name;
  std::string direction;
  byte_buffer bytes;  ///< from "hex" or the "bin" file; empty when the vector has none
  bool has_bytes = false;
  json meaning;
  json raw;
};

/// Path of a file under tests/data/interop.
std::string interop_path(const std::string& rel);

/// Every entry of one .jsonl file; bin-backed entries are loaded and their length
/// and head checked (a mismatch throws: the data set itself is broken).
std::vector<vector_entry> load_vectors(const std::string& file);

/// Empty when `actual` (value notation as value_to_json writes it) satisfies
/// `expected` (value notation from a vector), else a description of the first
/// difference. Every key present in `expected` must match; tables with several
/// hash pairs are compared as sets of pairs; {"pairs":[...]} compares against the
/// table as Lua sees it after unpack (array part as keys 1..N, nil values dropped,
/// last duplicate key wins).
std::string match_value(const json& expected, const json& actual, const std::string& path = "value");
std::string match_values(const json& expected, const json& actual, const std::string& path = "values");

/// Reads a whole binary file (throws on failure).
byte_buffer read_file(const std::string& path);

}  // namespace csk::test
