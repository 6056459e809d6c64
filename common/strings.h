// String concatenation that accepts std::string_view. Debian's Abseil
// (20220623) is built with its own absl::string_view (ABSL_OPTION_USE_STD_
// STRING_VIEW 0), so absl::StrCat rejects std::string_view arguments.
#ifndef QUIVER_COMMON_STRINGS_H_
#define QUIVER_COMMON_STRINGS_H_

#include <charconv>
#include <concepts>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace quiver {
namespace strings_internal {

inline void Append(std::string* out, std::string_view s) { out->append(s.data(), s.size()); }
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
inline void Append(std::string* out, absl::string_view s) { out->append(s.data(), s.size()); }
inline void Append(std::string* out, char c) { out->push_back(c); }
inline void Append(std::string* out, bool b) { out->append(b ? "true" : "false"); }
template <typename T>
requires(std::integral<T> && !std::same_as<T, bool> &&
         !std::same_as<T, char>) void Append(std::string* out, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}
template <typename T>
requires std::floating_point<T>
void Append(std::string* out, T v) {
  // Shortest representation that round-trips.
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

}  // namespace strings_internal

// Hash and equality for string-keyed hash maps that look up by
// std::string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  (strings_internal::Append(out, args), ...);
}

// `s` without leading and trailing ASCII whitespace.
// The last component of a path, ignoring trailing slashes ("a/b/" -> "b").
inline std::string_view LastPathComponent(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

inline std::string_view StripWhitespace(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  StrAppend(&out, args...);
  return out;
}

// The longest prefix of `s` of at most `max_bytes` that does not cut a UTF-8
// sequence in two (bytes that are not UTF-8 are cut anywhere).
inline std::string_view Utf8Prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  // Back off continuation bytes (10xxxxxx), at most three.
  for (int i = 0; i < 3 && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80; ++i) --n;
  return s.substr(0, n);
}

// `s` in double quotes, for messages that echo what a user sent: values
// longer than `max_bytes` are cut (at a UTF-8 boundary) and followed by their
// length, so an error about a 100 kB name stays a short message.
inline std::string Quoted(std::string_view s, size_t max_bytes = 64) {
  if (s.size() <= max_bytes) return StrCat("\"", s, "\"");
  return StrCat("\"", Utf8Prefix(s, max_bytes), "...\" (", s.size(), " bytes)");
}

}  // namespace quiver

#endif  // QUIVER_COMMON_STRINGS_H_
