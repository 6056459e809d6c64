#include "storage/metadata.h"

#include <cmath>

#include "common/coding.h"
#include "common/strings.h"

namespace quiver::storage {
namespace {
enum Tag : uint8_t { kBool = 0, kNumber = 1, kString = 2, kList = 3 };
}  // namespace

absl::StatusOr<Metadata> MetadataFromJson(const Json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        StrCat("metadata must be a JSON object, got ", Json::TypeName(json.type())));
  }
  Metadata out;
  for (const auto& [key, value] : json.as_object()) {
    if (key.empty()) return absl::InvalidArgumentError("metadata keys must not be empty");
    switch (value.type()) {
      case Json::Type::kBool:
        out.emplace(key, value.as_bool());
        break;
      case Json::Type::kNumber:
        if (!std::isfinite(value.as_number())) {
          return absl::InvalidArgumentError(
              StrCat("metadata field ", Quoted(key), " is not a finite number"));
        }
        out.emplace(key, value.as_number());
        break;
      case Json::Type::kString:
        out.emplace(key, value.as_string());
        break;
      case Json::Type::kArray: {
        StringList list;
        for (const Json& e : value.as_array()) {
          if (!e.is_string()) {
            return absl::InvalidArgumentError(
                StrCat("metadata field ", Quoted(key), " is a list holding a ",
                       Json::TypeName(e.type()), "; lists may hold strings only"));
          }
          list.push_back(e.as_string());
        }
        out.emplace(key, std::move(list));
        break;
      }
      case Json::Type::kNull:
        return absl::InvalidArgumentError(
            StrCat("metadata field ", Quoted(key), " is null; omit the field instead"));
      case Json::Type::kObject:
        return absl::InvalidArgumentError(StrCat(
            "metadata field \"", key,
            "\" is an object; values must be strings, numbers, booleans or lists of strings"));
    }
  }
  return out;
}

Json MetadataToJson(const Metadata& metadata) {
  Json::Object obj;
  for (const auto& [key, value] : metadata) {
    if (const bool* b = std::get_if<bool>(&value)) {
      obj.emplace(key, Json(*b));
    } else if (const double* d = std::get_if<double>(&value)) {
      obj.emplace(key, Json(*d));
    } else if (const std::string* s = std::get_if<std::string>(&value)) {
      obj.emplace(key, Json(*s));
    } else {
      Json::Array arr;
      for (const std::string& e : std::get<StringList>(value)) arr.emplace_back(e);
      obj.emplace(key, Json(std::move(arr)));
    }
  }
  return Json(std::move(obj));
}

size_t MetadataMemoryBytes(const Metadata& metadata) {
  // A std::map node: three pointers and a colour, the key and the value.
  constexpr size_t kNode = 4 * sizeof(void*) + sizeof(std::string) + sizeof(MetadataValue);
  size_t bytes = 0;
  for (const auto& [key, value] : metadata) {
    bytes += kNode + StringHeapBytes(key);
    if (const auto* s = std::get_if<std::string>(&value)) {
      bytes += StringHeapBytes(*s);
    } else if (const auto* list = std::get_if<StringList>(&value)) {
      bytes += list->size() * sizeof(std::string);
      for (const std::string& item : *list) bytes += StringHeapBytes(item);
    }
  }
  return bytes;
}

size_t MetadataJsonBytes(const Metadata& metadata) {
  return metadata.empty() ? 0 : MetadataToJson(metadata).Dump().size();
}

void EncodeMetadata(const Metadata& metadata, std::string* dst) {
  PutVarint64(dst, metadata.size());
  for (const auto& [key, value] : metadata) {
    PutLengthPrefixed(dst, key);
    if (const bool* b = std::get_if<bool>(&value)) {
      dst->push_back(static_cast<char>(kBool));
      dst->push_back(*b ? 1 : 0);
    } else if (const double* d = std::get_if<double>(&value)) {
      dst->push_back(static_cast<char>(kNumber));
      PutDouble(dst, *d);
    } else if (const std::string* s = std::get_if<std::string>(&value)) {
      dst->push_back(static_cast<char>(kString));
      PutLengthPrefixed(dst, *s);
    } else {
      const StringList& list = std::get<StringList>(value);
      dst->push_back(static_cast<char>(kList));
      PutVarint64(dst, list.size());
      for (const std::string& e : list) PutLengthPrefixed(dst, e);
    }
  }
}

bool DecodeMetadata(std::string_view* in, Metadata* metadata) {
  uint64_t count;
  if (!GetVarint64(in, &count) || count > in->size()) return false;
  metadata->clear();
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view key;
    if (!GetLengthPrefixed(in, &key) || in->empty()) return false;
    const uint8_t tag = static_cast<uint8_t>((*in)[0]);
    in->remove_prefix(1);
    switch (tag) {
      case kBool:
        if (in->empty()) return false;
        metadata->emplace(std::string(key), (*in)[0] != 0);
        in->remove_prefix(1);
        break;
      case kNumber: {
        double d;
        if (!GetDouble(in, &d)) return false;
        metadata->emplace(std::string(key), d);
        break;
      }
      case kString: {
        std::string_view s;
        if (!GetLengthPrefixed(in, &s)) return false;
        metadata->emplace(std::string(key), std::string(s));
        break;
      }
      case kList: {
        uint64_t n;
        if (!GetVarint64(in, &n) || n > in->size()) return false;
        StringList list;
        list.reserve(n);
        for (uint64_t k = 0; k < n; ++k) {
          std::string_view s;
          if (!GetLengthPrefixed(in, &s)) return false;
          list.emplace_back(s);
        }
        metadata->emplace(std::string(key), std::move(list));
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

}  // namespace quiver::storage
