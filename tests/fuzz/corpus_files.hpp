#pragma once
// Reading a committed corpus for the replay tests (corpus_replay_test, entity_corpus_test,
// decoder_corpus_test): the regular files of a directory in name order, and their bytes.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "common/base/bytes.hpp"

namespace csk::fuzz {

/// The regular files in `dir`, sorted by path; none if it is not a directory.
inline std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// A file's bytes (a failed open is a test failure and gives none).
inline byte_buffer read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  return byte_buffer(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace csk::fuzz
