// Command-line parsing for the quiver CLI: positionals plus --name=value,
// --name value, and boolean --name options (names with '-' or '_').
#ifndef QUIVER_CLIENT_ARGS_H_
#define QUIVER_CLIENT_ARGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::client {

class Args {
 public:
  // `booleans` lists the options that take no value.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& booleans);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& name) const { return options_.contains(name); }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // INVALID_ARGUMENT when present but not an integer in [lo, hi].
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback, int64_t lo,
                                 int64_t hi) const;
  // Options not in `known` (to report typos).
  std::vector<std::string> Unknown(const std::set<std::string>& known) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::string> options_;
};

}  // namespace quiver::client

#endif  // QUIVER_CLIENT_ARGS_H_
