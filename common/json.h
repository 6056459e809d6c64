// A small JSON value with a strict RFC 8259 parser and a serializer. Used for
// metadata filters, metadata values and model configuration files.
#ifndef QUIVER_COMMON_JSON_H_
#define QUIVER_COMMON_JSON_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json, std::less<>>;
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : value_(b) {}
  Json(double d) : value_(d) {}
  Json(int i) : value_(static_cast<double>(i)) {}
  Json(int64_t i) : value_(static_cast<double>(i)) {}
  Json(const char* s) : value_(std::string(s)) {}
  Json(std::string s) : value_(std::move(s)) {}
  Json(std::string_view s) : value_(std::string(s)) {}
  Json(Array a) : value_(std::move(a)) {}
  Json(Object o) : value_(std::move(o)) {}

  Type type() const { return static_cast<Type>(value_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kNumber; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // REQUIRES: the matching is_*() is true.
  bool as_bool() const { return std::get<bool>(value_); }
  double as_number() const { return std::get<double>(value_); }
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  Array& as_array() { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }
  Object& as_object() { return std::get<Object>(value_); }

  // Member lookup; nullptr when this is not an object or lacks the key.
  const Json* Find(std::string_view key) const;

  // Compact serialization (no spaces); numbers that are integers print
  // without a fraction.
  std::string Dump() const;

  friend bool operator==(const Json& a, const Json& b) { return a.value_ == b.value_; }

  static const char* TypeName(Type t);

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value_;
};

// Parses one JSON document (surrounding whitespace allowed). Errors are
// INVALID_ARGUMENT naming the byte offset. Nesting deeper than `max_depth`
// is rejected.
absl::StatusOr<Json> ParseJson(std::string_view text, int max_depth = 64);

// Appends `s` as a JSON string literal (with quotes) to `out`.
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace quiver

#endif  // QUIVER_COMMON_JSON_H_
