// Runs the committed corpora of the decoders of untrusted or cross-process bytes beyond
// the wire and channel ones: corpus/http (admin endpoint heads), corpus/transfer (transfer
// socket bodies and record streams) and corpus/assembler_state (request assembler hand-over
// state), each also cut at every length (truncation is the commonest corruption) and fed
// every other corpus file as garbage, so that every ctest build checks the invariants
// without libFuzzer. A violated invariant aborts the test binary.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/channel/transfer.hpp"
#include "common/wire/cluster_assembler.hpp"
#include "services/admin/http.hpp"
#include "tests/fuzz/corpus_files.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace fs = std::filesystem;
using target_fn = int (*)(const std::uint8_t*, std::size_t);

using csk::fuzz::files_in;
using csk::fuzz::read_bytes;

// Own corpus with every prefix, then every other corpus's files whole. Returns the number
// of own files.
std::size_t replay(target_fn target, const char* own) {
  const fs::path root(CSK_FUZZ_CORPUS_DIR);
  const auto files = files_in(root / own);
  for (const auto& f : files) {
    const auto bytes = read_bytes(f);
    const std::string name = f.string();
    csk_fuzz_current_input = name.c_str();
    target(bytes.data(), bytes.size());
    for (std::size_t n = 0; n < bytes.size() && n < 4096; ++n) target(bytes.data(), n);
  }
  for (const char* other : {"seri", "cluster", "channel", "entity", "http", "transfer", "assembler_state"}) {
    if (std::string_view(other) == own) continue;
    for (const auto& f : files_in(root / other)) {
      const auto bytes = read_bytes(f);
      const std::string name = f.string();
      csk_fuzz_current_input = name.c_str();
      target(bytes.data(), bytes.size());
    }
  }
  csk_fuzz_current_input = nullptr;
  return files.size();
}

TEST(DecoderCorpus, Http) { EXPECT_GT(replay(csk_fuzz_http, "http"), 0u); }
TEST(DecoderCorpus, Transfer) { EXPECT_GT(replay(csk_fuzz_transfer, "transfer"), 0u); }
TEST(DecoderCorpus, AssemblerState) { EXPECT_GT(replay(csk_fuzz_assembler_state, "assembler_state"), 0u); }

// The generated seeds say what their names say (make_decoder_corpus.py), so that the
// corpus keeps reaching the accepting paths.
TEST(DecoderCorpus, SeedsAreWhatTheirNamesSay) {
  const fs::path root(CSK_FUZZ_CORPUS_DIR);
  for (const char* name : {"metrics", "status-query", "pprof", "bare-lf"}) {
    const auto b = read_bytes(root / "http" / name);
    const auto u = csk::admin::unpack_http(b);
    ASSERT_EQ(u.what, csk::net::unpack_result::status::message) << name;
    EXPECT_TRUE(csk::admin::parse_request(csk::bytes_view(b).first(u.length))) << name;
  }
  namespace tx = csk::channel::transfer;
  for (const char* name : {"offer", "offer-empty", "accept", "refuse", "page", "applied", "commit", "conn", "done",
                           "serving", "abort"}) {
    const auto b = read_bytes(root / "transfer" / (std::string("body-") + name));
    ASSERT_FALSE(b.empty()) << name;
    auto m = tx::decode_body(static_cast<tx::kind>(b[0]), csk::bytes_view(b).subspan(1));
    ASSERT_TRUE(m) << name << ": " << m.error();
    EXPECT_EQ(tx::name_of(tx::kind_of(*m)), name == std::string("offer-empty") ? "offer" : name);
  }
  const auto import = [&](const char* name) {
    const auto b = read_bytes(root / "assembler_state" / name);
    EXPECT_FALSE(b.empty()) << name;
    csk::wire::assembler_limits limits;
    if (b[0] == 2) limits.max_pending_messages = 2;
    csk::wire::request_assembler a(limits);
    return a.import_state(csk::bytes_view(b).subspan(1)).has_value();
  };
  for (const char* name : {"empty", "trace-waiting", "one", "all-kinds", "unsorted", "over-limit"}) {
    EXPECT_TRUE(import(name)) << name;
  }
  for (const char* name : {"duplicate", "bad-version", "bad-flags", "not-discarded-orphan", "received-over-total",
                           "long-name", "trailing", "lying-length", "pending-2-all-kinds"}) {
    EXPECT_FALSE(import(name)) << name;
  }
}

}  // namespace
