// Runs the committed entity snapshot corpus (corpus/entity) through the entity fuzz target
// body, and every other corpus file as garbage, so that every ctest build checks its
// invariants without libFuzzer. A violated invariant aborts the test binary.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
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

void run(const fs::path& f, bool seed) {
  const auto bytes = read_bytes(f);
  const std::string name = f.string();
  csk_fuzz_current_input = name.c_str();
  csk_fuzz_entity(bytes.data(), bytes.size());
  // The generated seeds are valid snapshots: exactly one key kind takes each.
  if (seed && f.filename().string().rfind("found-", 0) != 0) {
    EXPECT_EQ(csk_fuzz_entity_accepted(), 1) << name;
  }
  // Every prefix too: truncation is the commonest corruption.
  for (std::size_t n = 0; n < bytes.size() && n < 4096; ++n) csk_fuzz_entity(bytes.data(), n);
  csk_fuzz_current_input = nullptr;
}

TEST(EntityCorpus, SeedsAndOtherCorpora) {
  const fs::path root(CSK_FUZZ_CORPUS_DIR);
  const auto seeds = files_in(root / "entity");
  for (const auto& f : seeds) run(f, true);
  for (const char* other : {"seri", "cluster", "channel"}) {
    for (const auto& f : files_in(root / other)) run(f, false);
  }
  EXPECT_GE(seeds.size(), 4u) << "no corpus files in " << CSK_FUZZ_CORPUS_DIR << "/entity";
}

// corpus/journal (make_journal_corpus.py) through the journal target, with the records its
// chain must give; every prefix too, and the other corpora as garbage.
TEST(JournalCorpus, SeedsAndOtherCorpora) {
  const fs::path root(CSK_FUZZ_CORPUS_DIR);
  const std::map<std::string, int> chain = {{"chain-3", 3}, {"newer-copy", 1}, {"wrap", 2},      {"epochs", 2},
                                            {"torn", 1},    {"frames", 0},     {"empty-page", 0}};
  const auto seeds = files_in(root / "journal");
  for (const auto& f : seeds) {
    const auto bytes = read_bytes(f);
    const std::string name = f.string();
    csk_fuzz_current_input = name.c_str();
    csk_fuzz_journal(bytes.data(), bytes.size());
    if (auto it = chain.find(f.filename().string()); it != chain.end()) {
      EXPECT_EQ(csk_fuzz_journal_records(), it->second) << name;
    }
    for (std::size_t n = 0; n < bytes.size(); n += 7) csk_fuzz_journal(bytes.data(), n);
  }
  for (const char* other : {"seri", "cluster", "channel", "entity"}) {
    for (const auto& f : files_in(root / other)) {
      const auto bytes = read_bytes(f);
      csk_fuzz_journal(bytes.data(), bytes.size());
    }
  }
  csk_fuzz_current_input = nullptr;
  EXPECT_EQ(seeds.size(), chain.size());
}

}  // namespace
