// A running node picks up an edited clustername.yaml (worker/node.hpp names_watcher).

#include <gtest/gtest.h>

#include <fstream>

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

TEST_F(NamesWatcherTest, ReportsATableOnlyWhenTheFileChanges) {
  write("db: \"127.0.0.1:2528\"\n");
  names_watcher w(path_);
  std::string error;
  auto first = w.poll(error);
  ASSERT_TRUE(first.has_value()) << error;
  EXPECT_EQ(first->nodes.at("db")->port, 2528);
  EXPECT_FALSE(w.poll(error).has_value());  // unchanged
  EXPECT_TRUE(error.empty());

  write("db: false\ncache: \"127.0.0.1:2600\"\n");
  auto second = w.poll(error);
  ASSERT_TRUE(second.has_value()) << error;
  EXPECT_FALSE(second->nodes.at("db").has_value());
  EXPECT_EQ(second->nodes.at("cache")->port, 2600);

  write("db: [oops\n");  // broken edit: reported, and retried at the next look
  EXPECT_FALSE(w.poll(error).has_value());
  EXPECT_FALSE(error.empty());
  error.clear();
  write("db: \"127.0.0.1:2529\"\n");
  auto fixed = w.poll(error);
  ASSERT_TRUE(fixed.has_value()) << error;
  EXPECT_EQ(fixed->nodes.at("db")->port, 2529);
}

TEST_F(NamesWatcherTest, MissingFileIsAnError) {
  names_watcher w(path_);
  std::string error;
  EXPECT_FALSE(w.poll(error).has_value());
  EXPECT_NE(error.find("cannot stat"), std::string::npos);
}

}  // namespace
}  // namespace csk

namespace csk {
namespace {

TEST(ExampleConfigs, EveryExampleConfigLoads) {
  const std::string root = CSK_SOURCE_DIR;
  for (const char* f : {"/examples/service/config.yaml", "/examples/cluster1/config.yaml", "/examples/cluster2/config.yaml"}) {
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
