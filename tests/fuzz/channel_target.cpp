#include <algorithm>

#include "common/channel/messages.hpp"
#include "common/channel/transfer.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

// Input: one channel record (common/channel/messages.hpp). decode either refuses it with
// an error text or returns a message that passes check() and encodes back to exactly the
// input: the format has one encoding per message, so anything else is a decoder bug.
//
// An input starting "CSKX" is a transfer record instead (common/channel/transfer.hpp): its
// kind field and its part as a whole body go to decode_body, with the same rule.
int csk_fuzz_channel(const std::uint8_t* data, std::size_t size) {
  const csk::bytes_view in(data, size);
  namespace tx = csk::channel::transfer;
  if (size >= tx::record_header && std::equal(data, data + 4, "CSKX")) {
    const auto k = static_cast<tx::kind>(data[4] | (data[5] << 8));
    const csk::bytes_view body = in.subspan(tx::record_header);
    auto m = tx::decode_body(k, body);
    if (!m) {
      CSK_FUZZ_CHECK(!m.error().empty());
      return 0;
    }
    CSK_FUZZ_CHECK(tx::kind_of(*m) == k);
    const csk::byte_buffer again = tx::encode_body(*m);
    CSK_FUZZ_CHECK(std::equal(again.begin(), again.end(), body.begin(), body.end()));
    return 0;
  }
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
