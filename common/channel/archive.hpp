#pragma once
// The channel's cereal archives (detail of csk::channel; included by messages.cpp and
// transfer.cpp only, never by users of the module).
//
// cereal's own binary archives write the host's byte order and, loading, resize a string
// or vector to whatever length the stream claims before reading it (USCiLab/cereal#103).
// These two write little-endian into a byte_buffer and read from a bytes_view, refusing
// any length larger than the bytes left: a 64 KiB record can never make them allocate
// more than about 64 KiB worth of elements.

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "common/base/bytes.hpp"

namespace csk::channel::detail {

class output_archive : public cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit output_archive(byte_buffer& out) : OutputArchive(this), out_(out) {}
  void save_bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }

 private:
  byte_buffer& out_;
};

class input_archive : public cereal::InputArchive<input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit input_archive(bytes_view in) : InputArchive(this), in_(in) {}
  void load_bytes(void* p, std::size_t n) {
    if (n > in_.size()) {
      throw cereal::Exception("truncated: needs " + std::to_string(n) + " more bytes, " +
                              std::to_string(in_.size()) + " left");
    }
    if (n == 0) return;  // an empty byte string: p may be null (memcpy must not see it)
    std::memcpy(p, in_.data(), n);
    in_ = in_.subspan(n);
  }
  std::size_t remaining() const noexcept { return in_.size(); }

 private:
  bytes_view in_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const T& t) {
  std::uint8_t b[sizeof(T)];
  std::memcpy(b, &t, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(b, b + sizeof(T));
  ar.save_bytes(b, sizeof(T));
}

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, T& t) {
  std::uint8_t b[sizeof(T)];
  ar.load_bytes(b, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(b, b + sizeof(T));
  std::memcpy(&t, b, sizeof(T));
}

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(input_archive, output_archive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}

// Every element takes at least one byte, so a count above the bytes left is a lie.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (t.size > ar.remaining()) {
    throw cereal::Exception("length " + std::to_string(t.size) + " exceeds the " +
                            std::to_string(ar.remaining()) + " bytes left");
  }
}

// A vector of strings or structs grows as its elements are read, where cereal would
// resize it to the claimed count first: the count check above allows one element per
// byte left, and an element here may take 100 bytes of memory, so a lying count in a
// large message (a transfer message may be 1 GiB) could otherwise reserve ~100x that.
// Now memory follows the elements actually read. (Vectors of numbers load as one block
// of bytes, already bounded by the bytes left.)
template <class T, class A>
  requires(!std::is_arithmetic_v<T>)
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::vector<T, A>& v) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  v.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    T item{};
    ar(item);
    v.push_back(std::move(item));
  }
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& bd) {
  static_assert(sizeof(std::remove_pointer_t<T>) == 1, "only byte data travels raw (no byte order)");
  ar.save_bytes(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::BinaryData<T>& bd) {
  static_assert(sizeof(std::remove_pointer_t<T>) == 1, "only byte data travels raw (no byte order)");
  ar.load_bytes(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace csk::channel::detail

CEREAL_REGISTER_ARCHIVE(csk::channel::detail::output_archive)
CEREAL_REGISTER_ARCHIVE(csk::channel::detail::input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(csk::channel::detail::input_archive, csk::channel::detail::output_archive)

