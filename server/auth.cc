#include "server/auth.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "common/strings.h"

namespace quiver::server {
namespace {

// Equal strings, in time that depends on the lengths only.
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

absl::Status ValidKey(std::string_view key, std::string_view where) {
  if (key.size() < 8) {
    return absl::InvalidArgumentError(StrCat(where, ": API keys must be at least 8 characters"));
  }
  for (char c : key) {
    if (c <= ' ' || c == 0x7F) {
      return absl::InvalidArgumentError(
          StrCat(where, ": API keys may not contain spaces or control characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::vector<std::string>& read_write,
                                      const std::string& file) {
  ApiKeys out;
  for (const std::string& k : read_write) {
    if (absl::Status s = ValidKey(k, "--api_key"); !s.ok()) return s;
    out.keys_.push_back({k, false});
  }
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(StrCat("cannot read --api_key_file ", file));
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      const std::string_view t = StripWhitespace(line);
      if (t.empty() || t[0] == '#') continue;
      std::vector<std::string_view> parts;
      for (size_t pos = 0; pos < t.size();) {
        const size_t end = std::min(t.find_first_of(" \t", pos), t.size());
        if (end > pos) parts.push_back(t.substr(pos, end - pos));
        pos = end + 1;
      }
      const std::string where = StrCat(file, ":", n);
      if (parts.size() > 2) return absl::InvalidArgumentError(StrCat(where, ": KEY [read-only]"));
      if (absl::Status s = ValidKey(parts[0], where); !s.ok()) return s;
      bool read_only = false;
      if (parts.size() == 2) {
        if (parts[1] == "read-only" || parts[1] == "ro") {
          read_only = true;
        } else if (parts[1] != "rw" && parts[1] != "read-write") {
          return absl::InvalidArgumentError(
              StrCat(where, ": access must be read-only or rw, not \"", parts[1], "\""));
        }
      }
      out.keys_.push_back({std::string(parts[0]), read_only});
    }
  }
  return out;
}

absl::Status ApiKeys::Authorize(std::string_view presented, bool write) const {
  if (keys_.empty()) return absl::OkStatus();
  const Key* match = nullptr;
  for (const Key& k : keys_) {  // Every key is compared, matched or not.
    if (ConstantTimeEqual(presented, k.key) && match == nullptr) match = &k;
  }
  if (match == nullptr || presented.empty()) {
    return absl::UnauthenticatedError(
        "a valid API key is required (gRPC metadata 'api-key: KEY' or 'authorization: Bearer "
        "KEY'; HTTP header 'Api-Key' or 'Authorization: Bearer KEY')");
  }
  if (write && match->read_only) {
    return absl::PermissionDeniedError("this API key is read-only; the request writes");
  }
  return absl::OkStatus();
}

std::string_view ApiKeys::PresentedKey(std::string_view api_key, std::string_view authorization) {
  if (!api_key.empty()) return api_key;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return {};
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kBearer[i]))) {
      return {};
    }
  }
  return StripWhitespace(authorization.substr(kBearer.size()));
  return {};
}

}  // namespace quiver::server
