#pragma once
// The cereal archives of entity snapshots: little-endian, into a byte_buffer / out of a
// bytes_view, and bounded when loading.
//
// cereal's own binary archives write the host's byte order and, when loading, resize a
// string or vector to whatever length the stream claims before reading it
// (USCiLab/cereal#103). These refuse any element count larger than the bytes left, so a
// corrupt or hostile snapshot can never make a restore allocate much more than the
// snapshot's own size (at most sizeof(element) times it, for arithmetic vectors).
//
// The input archive also remembers the first class version the stream records: the
// entity store checks it against the version in the snapshot header, so a stream cannot
// feed a serialize() a version the compatibility check did not approve.
//
// Errors are thrown as cereal::Exception; the store turns them into error results.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

#include <cereal/cereal.hpp>

#include "common/base/bytes.hpp"

namespace csk::entity::detail {

class output_archive : public cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit output_archive(byte_buffer& out) : OutputArchive(this), out_(&out) {}
  void save_bytes(const void* p, std::size_t n) {
    if (n == 0) return;  // p may be null (an empty vector's data())
    const std::size_t at = out_->size();
    out_->resize(at + n);
    std::memcpy(out_->data() + at, p, n);
  }
  byte_buffer& buffer() noexcept { return *out_; }

 private:
  byte_buffer* out_;
};

class input_archive : public cereal::InputArchive<input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit input_archive(bytes_view in) : InputArchive(this), in_(in) {}
  void load_bytes(void* p, std::size_t n) {
    if (n > in_.size() - pos_) {
      throw cereal::Exception("truncated: needs " + std::to_string(n) + " more bytes, " +
                              std::to_string(in_.size() - pos_) + " left");
    }
    if (n != 0) std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }

  /// The first class version the stream recorded (the entity type's own), if any yet.
  std::optional<std::uint32_t> first_class_version() const noexcept { return first_version_; }
  /// Where that version was in the stream (the entity type's own is the first thing of
  /// the first value).
  std::size_t first_class_version_at() const noexcept { return first_version_at_; }
  void note_class_version(std::uint32_t v) {
    if (!first_version_) {
      first_version_ = v;
      first_version_at_ = pos_ - sizeof(std::uint32_t);
    }
  }

 private:
  bytes_view in_;
  std::size_t pos_ = 0;
  std::optional<std::uint32_t> first_version_;
  std::size_t first_version_at_ = 0;
};

inline constexpr const char* class_version_nvp = "cereal_class_version";

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const T& t) {
  if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &t, sizeof(T));
    std::reverse(b, b + sizeof(T));
    ar.save_bytes(b, sizeof(T));
  } else {
    ar.save_bytes(&t, sizeof(T));
  }
}

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    // Any other byte would load as an indeterminate bool: refuse it.
    std::uint8_t b = 0;
    ar.load_bytes(&b, 1);
    if (b > 1) throw cereal::Exception("bad bool byte " + std::to_string(b));
    t = b != 0;
  } else if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
    std::uint8_t b[sizeof(T)];
    ar.load_bytes(b, sizeof(T));
    std::reverse(b, b + sizeof(T));
    std::memcpy(&t, b, sizeof(T));
  } else {
    ar.load_bytes(&t, sizeof(T));
  }
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
  if constexpr (std::is_same_v<std::remove_cvref_t<T>, std::uint32_t>) {
    // cereal names the class version it reads before a versioned type's data.
    if (t.name == class_version_nvp || std::strcmp(t.name, class_version_nvp) == 0) ar.note_class_version(t.value);
  }
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::SizeTag<T>& t) {
  ar(static_cast<std::uint64_t>(t.size));
}

// Every element takes at least one byte, so a count above the bytes left is a lie.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t n = 0;
  ar(n);
  if (n > ar.remaining()) {
    throw cereal::Exception("length " + std::to_string(n) + " exceeds the " + std::to_string(ar.remaining()) +
                            " bytes left");
  }
  t.size = static_cast<std::remove_reference_t<T>>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& bd) {
  using elem = std::remove_cv_t<std::remove_pointer_t<std::decay_t<T>>>;
  if constexpr (std::endian::native == std::endian::big && sizeof(elem) > 1) {
    const auto* p = static_cast<const elem*>(bd.data);
    for (std::size_t i = 0; i < static_cast<std::size_t>(bd.size) / sizeof(elem); ++i) ar(p[i]);
  } else {
    ar.save_bytes(bd.data, static_cast<std::size_t>(bd.size));
  }
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::BinaryData<T>& bd) {
  using elem = std::remove_cv_t<std::remove_pointer_t<std::decay_t<T>>>;
  if constexpr (std::endian::native == std::endian::big && sizeof(elem) > 1) {
    auto* p = static_cast<elem*>(bd.data);
    for (std::size_t i = 0; i < static_cast<std::size_t>(bd.size) / sizeof(elem); ++i) ar(p[i]);
  } else {
    ar.load_bytes(bd.data, static_cast<std::size_t>(bd.size));
  }
}

}  // namespace csk::entity::detail

CEREAL_REGISTER_ARCHIVE(csk::entity::detail::output_archive)
CEREAL_REGISTER_ARCHIVE(csk::entity::detail::input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(csk::entity::detail::input_archive, csk::entity::detail::output_archive)
