#include "storage/filter.h"

#include <variant>

#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::storage {

// A scalar operand: string, number or boolean.
using Scalar = std::variant<bool, double, std::string>;

struct Filter::Node {
  enum class Kind { kAnd, kOr, kEq, kNe, kGt, kGte, kLt, kLte, kIn, kNin, kExists };
  Kind kind;
  std::string field;                            // Leaf conditions.
  std::vector<Scalar> operands;                 // One for $eq..$lte, many for $in/$nin.
  bool exists = true;                           // $exists.
  std::vector<std::unique_ptr<Node>> children;  // $and / $or.
};

namespace {

using Node = Filter::Node;
using Kind = Node::Kind;

bool ScalarEquals(const MetadataValue& v, const Scalar& s) {
  if (const bool* b = std::get_if<bool>(&v)) {
    const bool* o = std::get_if<bool>(&s);
    return o != nullptr && *o == *b;
  }
  if (const double* d = std::get_if<double>(&v)) {
    const double* o = std::get_if<double>(&s);
    return o != nullptr && *o == *d;
  }
  const std::string* o = std::get_if<std::string>(&s);
  if (o == nullptr) return false;
  if (const std::string* str = std::get_if<std::string>(&v)) return *str == *o;
  for (const std::string& e : std::get<StringList>(v)) {
    if (e == *o) return true;
  }
  return false;
}

bool AnyEquals(const MetadataValue& v, const std::vector<Scalar>& operands) {
  for (const Scalar& s : operands) {
    if (ScalarEquals(v, s)) return true;
  }
  return false;
}

bool Evaluate(const Node& n, const Metadata& md) {
  switch (n.kind) {
    case Kind::kAnd:
      for (const auto& c : n.children) {
        if (!Evaluate(*c, md)) return false;
      }
      return true;
    case Kind::kOr:
      for (const auto& c : n.children) {
        if (Evaluate(*c, md)) return true;
      }
      return false;
    default:
      break;
  }
  auto it = md.find(n.field);
  if (n.kind == Kind::kExists) return (it != md.end()) == n.exists;
  if (it == md.end()) return n.kind == Kind::kNe || n.kind == Kind::kNin;
  const MetadataValue& v = it->second;
  switch (n.kind) {
    case Kind::kEq:
      return ScalarEquals(v, n.operands[0]);
    case Kind::kNe:
      return !ScalarEquals(v, n.operands[0]);
    case Kind::kIn:
      return AnyEquals(v, n.operands);
    case Kind::kNin:
      return !AnyEquals(v, n.operands);
    default:
      break;
  }
  const double* d = std::get_if<double>(&v);
  if (d == nullptr) return false;
  const double o = std::get<double>(n.operands[0]);
  switch (n.kind) {
    case Kind::kGt:
      return *d > o;
    case Kind::kGte:
      return *d >= o;
    case Kind::kLt:
      return *d < o;
    case Kind::kLte:
      return *d <= o;
    default:
      return false;
  }
}

class FilterParser {
 public:
  absl::StatusOr<std::unique_ptr<Node>> ParseObject(const Json& json, int depth) {
    if (depth > kMaxFilterDepth) {
      return absl::InvalidArgumentError(
          StrCat("filter is nested deeper than ", kMaxFilterDepth, " levels"));
    }
    if (!json.is_object()) {
      return absl::InvalidArgumentError(
          StrCat("a filter must be a JSON object, got ", Json::TypeName(json.type())));
    }
    auto all = std::make_unique<Node>();
    all->kind = Kind::kAnd;
    for (const auto& [key, value] : json.as_object()) {
      if (key == "$and" || key == "$or") {
        ASSIGN_OR_RETURN(auto node, ParseLogical(key, value, depth));
        all->children.push_back(std::move(node));
      } else if (!key.empty() && key[0] == '$') {
        return absl::InvalidArgumentError(StrCat("unknown top-level filter operator ", Quoted(key),
                                                 "; expected $and, $or or a field name"));
      } else if (key.empty()) {
        return absl::InvalidArgumentError("filter field names must not be empty");
      } else {
        RETURN_IF_ERROR(ParseField(key, value, all.get()));
      }
    }
    if (all->children.size() == 1) return std::move(all->children[0]);
    return all;
  }

 private:
  absl::Status Count(size_t n) {
    terms_ += n;
    if (terms_ > kMaxFilterTerms) {
      return absl::InvalidArgumentError(
          StrCat("filter has more than ", kMaxFilterTerms, " conditions and operands"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Node>> ParseLogical(const std::string& op, const Json& value,
                                                     int depth) {
    if (!value.is_array() || value.as_array().empty()) {
      return absl::InvalidArgumentError(StrCat(op, " takes a non-empty list of filters"));
    }
    RETURN_IF_ERROR(Count(value.as_array().size()));
    auto node = std::make_unique<Node>();
    node->kind = op == "$and" ? Kind::kAnd : Kind::kOr;
    for (const Json& sub : value.as_array()) {
      ASSIGN_OR_RETURN(auto child, ParseObject(sub, depth + 1));
      node->children.push_back(std::move(child));
    }
    return node;
  }

  static absl::StatusOr<Scalar> ToScalar(const std::string& field, const std::string& op,
                                         const Json& v) {
    switch (v.type()) {
      case Json::Type::kBool:
        return Scalar(v.as_bool());
      case Json::Type::kNumber:
        return Scalar(v.as_number());
      case Json::Type::kString:
        return Scalar(v.as_string());
      default:
        return absl::InvalidArgumentError(StrCat("filter on ", Quoted(field), ": ", op,
                                                 " takes a string, number or boolean, got ",
                                                 Json::TypeName(v.type())));
    }
  }

  absl::Status ParseField(const std::string& field, const Json& value, Node* parent) {
    RETURN_IF_ERROR(Count(1));
    if (!value.is_object()) {
      ASSIGN_OR_RETURN(Scalar s, ToScalar(field, "$eq", value));
      auto n = std::make_unique<Node>();
      n->kind = Kind::kEq;
      n->field = field;
      n->operands.push_back(std::move(s));
      parent->children.push_back(std::move(n));
      return absl::OkStatus();
    }
    if (value.as_object().empty()) {
      return absl::InvalidArgumentError(StrCat("filter on ", Quoted(field), " has no operator"));
    }
    for (const auto& [op, operand] : value.as_object()) {
      auto n = std::make_unique<Node>();
      n->field = field;
      if (op == "$eq" || op == "$ne") {
        n->kind = op == "$eq" ? Kind::kEq : Kind::kNe;
        ASSIGN_OR_RETURN(Scalar s, ToScalar(field, op, operand));
        n->operands.push_back(std::move(s));
      } else if (op == "$gt" || op == "$gte" || op == "$lt" || op == "$lte") {
        n->kind = op == "$gt"    ? Kind::kGt
                  : op == "$gte" ? Kind::kGte
                  : op == "$lt"  ? Kind::kLt
                                 : Kind::kLte;
        if (!operand.is_number()) {
          return absl::InvalidArgumentError(StrCat("filter on ", Quoted(field), ": ", op,
                                                   " takes a number, got ",
                                                   Json::TypeName(operand.type())));
        }
        n->operands.emplace_back(operand.as_number());
      } else if (op == "$in" || op == "$nin") {
        n->kind = op == "$in" ? Kind::kIn : Kind::kNin;
        if (!operand.is_array() || operand.as_array().empty()) {
          return absl::InvalidArgumentError(
              StrCat("filter on ", Quoted(field), ": ", op, " takes a non-empty list"));
        }
        RETURN_IF_ERROR(Count(operand.as_array().size()));
        for (const Json& e : operand.as_array()) {
          ASSIGN_OR_RETURN(Scalar s, ToScalar(field, op, e));
          n->operands.push_back(std::move(s));
        }
      } else if (op == "$exists") {
        n->kind = Kind::kExists;
        if (!operand.is_bool()) {
          return absl::InvalidArgumentError(StrCat("filter on \"", field,
                                                   "\": $exists takes true or false, got ",
                                                   Json::TypeName(operand.type())));
        }
        n->exists = operand.as_bool();
      } else {
        return absl::InvalidArgumentError(
            StrCat("filter on ", Quoted(field), ": unknown operator ", Quoted(op),
                   "; expected one of $eq $ne $gt $gte $lt $lte $in $nin $exists"));
      }
      parent->children.push_back(std::move(n));
    }
    return absl::OkStatus();
  }

  size_t terms_ = 0;
};

}  // namespace

Filter::Filter() = default;
Filter::~Filter() = default;
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;
Filter::Filter(std::unique_ptr<Node> root) : root_(std::move(root)) {}

absl::StatusOr<Filter> Filter::Parse(const Json& json) {
  FilterParser parser;
  ASSIGN_OR_RETURN(std::unique_ptr<Node> root, parser.ParseObject(json, 1));
  if (root->kind == Kind::kAnd && root->children.empty()) return Filter();
  return Filter(std::move(root));
}

bool Filter::Matches(const Metadata& metadata) const {
  return root_ == nullptr || Evaluate(*root_, metadata);
}

bool Filter::MatchesAll() const { return root_ == nullptr; }

}  // namespace quiver::storage
