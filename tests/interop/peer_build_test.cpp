// The ctest fixture of the interop label (FIXTURES_SETUP skynet_peer, see CMakeLists.txt):
// builds Lua skynet once through the peer's build.sh before the other tests start, so
// they do not all wait on its lock. Skips like them when there is no peer.

#include "tests/interop/skynet_peer.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::interop {
namespace {

class SkynetPeer : public test::temp_dir_test {};

TEST_F(SkynetPeer, IsBuilt) {
  const auto found = look_for_peer(dir_);
  if (found.absent) GTEST_SKIP() << found.why;
  ASSERT_TRUE(found.peer.has_value()) << found.why;
  EXPECT_TRUE(fs::exists(found.peer->root / "cservice" / "snlua.so")) << found.peer->root;
  std::cout << "skynet peer: " << found.peer->dir.string() << ", skynet tree " << found.peer->root.string() << "\n";
}

}  // namespace
}  // namespace csk::interop
