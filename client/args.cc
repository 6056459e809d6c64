#include "client/args.h"

#include <charconv>

#include "common/strings.h"

namespace quiver::client {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::set<std::string>& booleans) {
  Args out;
  bool only_positional = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (only_positional || a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a == "--") {
        only_positional = true;
        continue;
      }
      out.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    const size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    if (booleans.contains(name)) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(StrCat("--", name, " takes no value"));
      }
      if (!has_value || value == "true") out.options_[name] = "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argv.size())
        return absl::InvalidArgumentError(StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    out.options_[name] = value;
  }
  return out;
}

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = options_.find(name);
  return it == options_.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> Args::GetInt(const std::string& name, int64_t fallback, int64_t lo,
                                     int64_t hi) const {
  auto it = options_.find(name);
  if (it == options_.end()) return fallback;
  int64_t v = 0;
  const std::string& s = it->second;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        StrCat("--", name, " must be an integer in ", lo, "..", hi, ", got \"", s, "\""));
  }
  return v;
}

std::vector<std::string> Args::Unknown(const std::set<std::string>& known) const {
  std::vector<std::string> out;
  for (const auto& [name, value] : options_) {
    if (!known.contains(name)) out.push_back(name);
  }
  return out;
}

}  // namespace quiver::client
