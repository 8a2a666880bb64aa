// Runs the committed fuzz corpus (and the large interop vectors, which are too big
// for the corpus) through both fuzz target bodies, so that every ctest build checks
// the fuzz invariants without libFuzzer. A violated invariant aborts the test binary.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "common/base/bytes.hpp"
#include "tests/fuzz/corpus_files.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace fs = std::filesystem;

using csk::fuzz::files_in;
using csk::fuzz::read_bytes;

// Feeds one input to a target with the file name on record for failure messages.
template <class Target>
void run(Target target, const std::string& name, const csk::byte_buffer& input) {
  csk_fuzz_current_input = name.c_str();
  target(input.data(), input.size());
  csk_fuzz_current_input = nullptr;
}

std::size_t replay_dir(const fs::path& dir) {
  const auto files = files_in(dir);
  for (const auto& f : files) {
    const auto bytes = read_bytes(f);
    run(csk_fuzz_seri, f.string(), bytes);
    run(csk_fuzz_cluster, f.string(), bytes);
  }
  return files.size();
}

TEST(CorpusReplay, SeriCorpus) {
  const std::size_t n = replay_dir(fs::path(CSK_FUZZ_CORPUS_DIR) / "seri");
  EXPECT_GT(n, 0u) << "no corpus files in " << CSK_FUZZ_CORPUS_DIR << "/seri";
}

TEST(CorpusReplay, ClusterCorpus) {
  const std::size_t n = replay_dir(fs::path(CSK_FUZZ_CORPUS_DIR) / "cluster");
  EXPECT_GT(n, 0u) << "no corpus files in " << CSK_FUZZ_CORPUS_DIR << "/cluster";
}

// The channel target gets its own corpus (records are nothing like wire bytes), plus
// every other corpus file as garbage.
TEST(CorpusReplay, ChannelCorpus) {
  const auto files = files_in(fs::path(CSK_FUZZ_CORPUS_DIR) / "channel");
  for (const auto& f : files) run(csk_fuzz_channel, f.string(), read_bytes(f));
  for (const char* other : {"seri", "cluster"}) {
    for (const auto& f : files_in(fs::path(CSK_FUZZ_CORPUS_DIR) / other)) run(csk_fuzz_channel, f.string(), read_bytes(f));
  }
  EXPECT_GT(files.size(), 0u) << "no corpus files in " << CSK_FUZZ_CORPUS_DIR << "/channel";
}

// The interop .bin files (multi-part messages, whole capture sessions) are over the
// corpus size budget; they run here with a few chunkings. Control bytes follow the
// input layout described in cluster_target.cpp.
TEST(CorpusReplay, InteropBinFiles) {
  const std::vector<csk::byte_buffer> prefixes = {
      {0x00},                    // the whole stream in one feed()
      {0x03, 0x00, 0x0f, 0xff},  // 1, 16, 256-byte feeds
      {0x19, 0x3f},              // 16 KiB feeds, tight limits
  };
  const auto files = files_in(fs::path(CSK_TEST_DATA_DIR) / "interop" / "bin");
  for (const auto& f : files) {
    const auto bytes = read_bytes(f);
    if (f.filename().string().rfind("seri_", 0) == 0) {
      run(csk_fuzz_seri, f.string(), bytes);
      continue;
    }
    for (const auto& prefix : prefixes) {
      csk::byte_buffer input = prefix;
      input.insert(input.end(), bytes.begin(), bytes.end());
      run(csk_fuzz_cluster, f.string(), input);
    }
  }
  EXPECT_GT(files.size(), 0u) << "no .bin files in " << CSK_TEST_DATA_DIR << "/interop/bin";
}

void append_frame(csk::byte_buffer& out, const csk::byte_buffer& body) {
  out.push_back(static_cast<std::uint8_t>(body.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
}

csk::byte_buffer body_of(std::initializer_list<std::uint8_t> head, std::size_t filler) {
  csk::byte_buffer b(head);
  b.resize(b.size() + filler, 0x5a);
  return b;
}

// Single frames bigger than skynet ever sends in one (payload >= 32768, error text or
// trace tag over 32768) are still legal frames; the fuzzer's inputs rarely grow that far.
TEST(CorpusReplay, OversizedSingleFrames) {
  csk::byte_buffer stream;
  append_frame(stream, body_of({0x00, 0x0a, 0, 0, 0, 0x07, 0, 0, 0}, 40000));          // req_addr
  append_frame(stream, body_of({0x80, 0x05, '@', 'e', 'c', 'h', 'o', 0, 0, 0, 0}, 60000));  // push by name
  append_frame(stream, body_of({0x09, 0, 0, 0, 0x01}, 40000));                            // OK response
  append_frame(stream, body_of({0x0a, 0, 0, 0, 0x00}, 40000));                            // ERROR response
  append_frame(stream, body_of({0x04}, 40000));                                           // trace
  for (const csk::byte_buffer& prefix : {csk::byte_buffer{0x00}, csk::byte_buffer{0x09, 0x7f}}) {
    csk::byte_buffer input = prefix;
    input.insert(input.end(), stream.begin(), stream.end());
    run(csk_fuzz_cluster, "oversized single frames", input);
  }
}

}  // namespace
