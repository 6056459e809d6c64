// Metadata filters in the Pinecone/MongoDB query language.
//
//   {"genre": "drama"}                              implicit $eq
//   {"year": {"$gte": 2000, "$lt": 2010}}           several operators: all must hold
//   {"$or": [{"genre": "drama"}, {"tags": {"$in": ["a", "b"]}}]}
//
// Operators: $eq $ne (string, number or boolean operand), $gt $gte $lt $lte
// (number), $in $nin (non-empty list of strings, numbers or booleans),
// $exists (boolean), $and $or (non-empty list of filters).
// Semantics:
//  - A list-of-strings field matches $eq when it contains the value, $in
//    when it shares a value with the operand; $ne and $nin are their negations.
//  - Comparisons match only number fields; values of another type never match.
//  - A missing field matches $ne, $nin and {"$exists": false} only.
//  - The empty filter {} matches every record.
#ifndef QUIVER_STORAGE_FILTER_H_
#define QUIVER_STORAGE_FILTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "storage/metadata.h"

namespace quiver::storage {

// Filters nested deeper than this ($and/$or levels) are rejected.
inline constexpr int kMaxFilterDepth = 16;
// Total conditions plus operand list elements allowed in one filter.
inline constexpr int kMaxFilterTerms = 10000;

class Filter {
 public:
  // Parses `json`. INVALID_ARGUMENT naming the offending part for an unknown
  // operator, a wrong operand type, an empty $and/$or/$in, or a filter too deep
  // or too large.
  static absl::StatusOr<Filter> Parse(const Json& json);

  // The filter that matches everything.
  Filter();
  ~Filter();
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;

  bool Matches(const Metadata& metadata) const;
  // True for the empty filter.
  bool MatchesAll() const;

  struct Node;

 private:
  explicit Filter(std::unique_ptr<Node> root);
  std::unique_ptr<Node> root_;  // Null: matches everything.
};

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_FILTER_H_
