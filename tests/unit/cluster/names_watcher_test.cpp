// A running node picks up an edited clustername.yaml or clustername.lua (worker/node.hpp
// names_watcher).

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/config/load_config.hpp"
#include "tests/support/temp_dir.hpp"
#include "worker/node.hpp"

namespace csk {
namespace {

class NamesWatcherTest : public test::temp_dir_test {
 protected:
  void SetUp() override {
    temp_dir_test::SetUp();
    path_ = (dir_ / "clustername.yaml").string();
  }
  void write(const std::string& text) {
    std::ofstream f(path_, std::ios::trunc);
    f << text;
  }
  std::string path_;
};

// Successive contents below differ in size: an edit is seen by its mtime or size, and
// two writes within one clock tick may share an mtime.
TEST_F(NamesWatcherTest, ReportsATableOnlyWhenTheFileChanges) {
  write("db: \"127.0.0.1:2528\"\n");
  names_watcher w(path_);
  auto first = w.poll();
  ASSERT_TRUE(first.table.has_value()) << first.error;
  EXPECT_EQ(first.table->nodes.at("db")->port, 2528);
  auto unchanged = w.poll();
  EXPECT_FALSE(unchanged.table.has_value());
  EXPECT_TRUE(unchanged.error.empty());
  EXPECT_FALSE(unchanged.new_error);
  EXPECT_FALSE(unchanged.recovered);

  write("db: false\ncache: \"127.0.0.1:2600\"\n");
  auto second = w.poll();
  ASSERT_TRUE(second.table.has_value()) << second.error;
  EXPECT_FALSE(second.table->nodes.at("db").has_value());
  EXPECT_EQ(second.table->nodes.at("cache")->port, 2600);

  write("db: [oops\n");  // broken edit: reported, and retried at the next look
  auto broken = w.poll();
  EXPECT_FALSE(broken.table.has_value());
  EXPECT_FALSE(broken.error.empty());
  write("db: \"127.0.0.1:2529\"\n");
  auto fixed = w.poll();
  ASSERT_TRUE(fixed.table.has_value()) << fixed.error;
  EXPECT_EQ(fixed.table->nodes.at("db")->port, 2529);
}

// The node logs a failure only when the watcher says it is new (worker/node.cpp
// watch_names): a file that stays broken is reported once, though it is loaded again
// at every look; another error is new again; the end of the failure is reported once.
TEST_F(NamesWatcherTest, AFailureIsNewOncePerDistinctError) {
  write("db: \"127.0.0.1:2528\"\n");
  names_watcher w(path_);
  ASSERT_TRUE(w.poll().table.has_value());

  write("db: [oops\n");
  int logged = 0;
  std::string first_error;
  for (int look = 0; look < 5; ++look) {
    auto r = w.poll();
    EXPECT_FALSE(r.table.has_value());
    EXPECT_FALSE(r.error.empty()) << "look " << look;  // still failing: the file is loaded each time
    EXPECT_FALSE(r.recovered);
    if (look == 0) first_error = r.error;
    EXPECT_EQ(r.error, first_error);
    logged += r.new_error ? 1 : 0;
  }
  EXPECT_EQ(logged, 1);

  write("db: true\n");  // broken another way
  auto other = w.poll();
  EXPECT_FALSE(other.table.has_value());
  EXPECT_NE(other.error, first_error);
  EXPECT_NE(other.error.find("true is not an address"), std::string::npos) << other.error;
  EXPECT_TRUE(other.new_error);
  EXPECT_FALSE(w.poll().new_error);

  write("db: \"127.0.0.1:2530\"\n");
  auto fixed = w.poll();
  ASSERT_TRUE(fixed.table.has_value()) << fixed.error;
  EXPECT_EQ(fixed.table->nodes.at("db")->port, 2530);
  EXPECT_TRUE(fixed.error.empty());
  EXPECT_FALSE(fixed.new_error);
  EXPECT_TRUE(fixed.recovered);
  auto after = w.poll();
  EXPECT_FALSE(after.table.has_value());
  EXPECT_FALSE(after.recovered);

  write("db: [oops\n");  // the same error as before, but after a recovery: new again
  EXPECT_TRUE(w.poll().new_error);
}

TEST_F(NamesWatcherTest, MissingFileIsAnErrorOnceAndItsReturnIsReported) {
  names_watcher w(path_);
  auto missing = w.poll();
  EXPECT_FALSE(missing.table.has_value());
  EXPECT_NE(missing.error.find("cannot stat"), std::string::npos) << missing.error;
  EXPECT_TRUE(missing.new_error);
  EXPECT_FALSE(w.poll().new_error);

  write("db: \"127.0.0.1:2528\"\n");
  auto back = w.poll();
  ASSERT_TRUE(back.table.has_value()) << back.error;
  EXPECT_TRUE(back.recovered);

  // Moved away and back unchanged (same mtime and size): no new table, but the failure
  // in between ends with a recovery.
  const std::string aside = path_ + ".aside";
  ASSERT_EQ(std::rename(path_.c_str(), aside.c_str()), 0);
  EXPECT_TRUE(w.poll().new_error);
  ASSERT_EQ(std::rename(aside.c_str(), path_.c_str()), 0);
  auto unchanged = w.poll();
  EXPECT_FALSE(unchanged.table.has_value());
  EXPECT_TRUE(unchanged.error.empty());
  EXPECT_TRUE(unchanged.recovered);
}

// skynet's own clustername.lua is watched the same way: a bad edit (a syntax error, a
// value that is not an address, an endless loop, a file too big to read) gives no table,
// so the node keeps the one it has (worker/node.cpp applies only outcome.table), and the
// error names the line.
TEST_F(NamesWatcherTest, ALuaTableIsWatchedAndABadEditKeepsThePreviousTable) {
  path_ = (dir_ / "clustername.lua").string();
  cluster_names current;  // what the node has: only a loaded table replaces it
  const auto look = [&](names_watcher& w) {
    auto r = w.poll();
    if (r.table) current = *r.table;
    return r;
  };
  write("-- the game's nodes\ndb = \"127.0.0.1:2528\"\nold = false\n__nowaiting = true\n");
  names_watcher w(path_);
  auto first = look(w);
  ASSERT_TRUE(first.table.has_value()) << first.error;
  EXPECT_EQ(current.nodes.at("db")->port, 2528);
  EXPECT_FALSE(current.nodes.at("old").has_value());
  EXPECT_TRUE(current.nowaiting);

  struct bad_edit {
    std::string text;
    std::string error;
  };
  const bad_edit edits[] = {
      {"db = \"127.0.0.1:2529\"\nold = = false\n", "syntax error (line 2): unexpected symbol near '='"},
      {"db = \"127.0.0.1:2529\"\n\nold = 2530\n", "old (line 3): expected \"host:port\" or false, got integer 2530"},
      {"db = \"127.0.0.1:2529\"\nwhile true do end\n",
       "(document) (line 2): the node table took too long (an endless loop?): more than 1000000 Lua instructions"},
      {"db = \"127.0.0.1:2529\"\nos.execute(\"reboot\")\n",
       "(document) (line 2): attempt to index a nil value (global 'os')"},
  };
  for (const auto& e : edits) {
    SCOPED_TRACE(e.text);
    write(e.text);
    auto r = look(w);
    EXPECT_FALSE(r.table.has_value());
    EXPECT_EQ(r.error, e.error);
    EXPECT_TRUE(r.new_error);
    EXPECT_EQ(current.nodes.at("db")->port, 2528);  // the previous table stays
    EXPECT_TRUE(current.nowaiting);
  }
  {
    std::ofstream(path_, std::ios::trunc) << "db = \"127.0.0.1:2529\"\n";
    std::filesystem::resize_file(path_, std::uintmax_t{100} << 20);  // sparse
  }
  auto big = look(w);
  EXPECT_FALSE(big.table.has_value());
  EXPECT_NE(big.error.find("too big: 104857600 bytes"), std::string::npos) << big.error;
  EXPECT_EQ(current.nodes.at("db")->port, 2528);

  write("db = \"127.0.0.1:2531\"\nold = \"[::1]:2532\"\n");
  auto fixed = look(w);
  ASSERT_TRUE(fixed.table.has_value()) << fixed.error;
  EXPECT_TRUE(fixed.recovered);
  EXPECT_EQ(current.nodes.at("db")->port, 2531);
  EXPECT_EQ(current.nodes.at("old")->host, "::1");
  EXPECT_FALSE(current.nowaiting);
}

}  // namespace
}  // namespace csk

namespace csk {
namespace {

TEST(ExampleConfigs, EveryExampleConfigLoads) {
  const std::string root = CSK_SOURCE_DIR;
  for (const char* f : {"/examples/service/config.yaml", "/examples/cluster1/config.yaml", "/examples/cluster2/config.yaml",
                        "/examples/cluster3/config.yaml"}) {
    auto cfg = load_config_file(root + f);
    EXPECT_TRUE(cfg.has_value()) << f << ": " << (cfg ? "" : cfg.error());
    if (cfg && !cfg->cluster.names_file.empty()) {
      auto t = load_cluster_names_file(cfg->cluster.names_file);
      ASSERT_TRUE(t.has_value()) << t.error();
      EXPECT_TRUE(t->nodes.count(cfg->cluster.self)) << f;
    }
  }
}

}  // namespace
}  // namespace csk
