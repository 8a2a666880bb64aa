#include <algorithm>

#include "common/channel/messages.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

// Input: one channel record (common/channel/messages.hpp). decode either refuses it with
// an error text or returns a message that passes check() and encodes back to exactly the
// input: the format has one encoding per message, so anything else is a decoder bug.
int csk_fuzz_channel(const std::uint8_t* data, std::size_t size) {
  const csk::bytes_view in(data, size);
  auto m = csk::channel::decode(in);
  if (!m) {
    CSK_FUZZ_CHECK(!m.error().empty());
    return 0;
  }
  CSK_FUZZ_CHECK(csk::channel::check(*m).empty());
  const csk::byte_buffer again = csk::channel::encode(*m);
  CSK_FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
  auto back = csk::channel::decode(again);
  CSK_FUZZ_CHECK(back && *back == *m);
  return 0;
}
