#include "llm/chat_template.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <map>
#include <optional>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::llm {
namespace {

// ---- Values ---------------------------------------------------------------------

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // Insertion order, as Python's.

struct Value {
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict };
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // Shared: a namespace() is changed in place by {% set ns.x %}.

  static Value None() {
    Value v;
    v.kind = Kind::kNone;
    return v;
  }
  static Value Bool(bool x) {
    Value v;
    v.kind = Kind::kBool;
    v.b = x;
    return v;
  }
  static Value Int(int64_t x) {
    Value v;
    v.kind = Kind::kInt;
    v.i = x;
    return v;
  }
  static Value Float(double x) {
    Value v;
    v.kind = Kind::kFloat;
    v.f = x;
    return v;
  }
  static Value Str(std::string x) {
    Value v;
    v.kind = Kind::kString;
    v.s = std::move(x);
    return v;
  }
  static Value MakeList(List l = {}) {
    Value v;
    v.kind = Kind::kList;
    v.list = std::make_shared<List>(std::move(l));
    return v;
  }
  static Value MakeDict(Dict d = {}) {
    Value v;
    v.kind = Kind::kDict;
    v.dict = std::make_shared<Dict>(std::move(d));
    return v;
  }
  bool defined() const { return kind != Kind::kUndefined; }
  bool is_number() const {
    return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool;
  }
  double number() const {
    return kind == Kind::kFloat ? f : kind == Kind::kBool ? b : static_cast<double>(i);
  }
  const Value* Get(std::string_view key) const {
    if (kind != Kind::kDict) return nullptr;
    for (const auto& [k, v] : *dict) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  void Set(const std::string& key, Value v) {
    for (auto& [k, old] : *dict) {
      if (k == key) {
        old = std::move(v);
        return;
      }
    }
    dict->emplace_back(key, std::move(v));
  }
};

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.b;
    case Value::Kind::kInt:
      return v.i != 0;
    case Value::Kind::kFloat:
      return v.f != 0;
    case Value::Kind::kString:
      return !v.s.empty();
    case Value::Kind::kList:
      return !v.list->empty();
    case Value::Kind::kDict:
      return !v.dict->empty();
  }
  return false;
}

std::string FloatText(double d) {  // Python's repr for the common cases.
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e16)
    return StrCat(static_cast<int64_t>(d), ".0");
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  for (int p = 1; p < 17; ++p) {  // Shortest that reads back the same.
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", p, d);
    if (std::strtod(shorter, nullptr) == d) return shorter;
  }
  return buf;
}

std::string Repr(const Value& v);

// What {{ }} prints: Python's str().
std::string Text(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.b ? "True" : "False";
    case Value::Kind::kInt:
      return StrCat(v.i);
    case Value::Kind::kFloat:
      return FloatText(v.f);
    case Value::Kind::kString:
      return v.s;
    default:
      return Repr(v);
  }
}

std::string Repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString: {
      const char q =
          v.s.find('\'') != std::string::npos && v.s.find('"') == std::string::npos ? '"' : '\'';
      std::string out(1, q);
      for (char c : v.s) {
        if (c == q || c == '\\') out.push_back('\\');
        if (c == '\n') {
          out += "\\n";
          continue;
        }
        out.push_back(c);
      }
      return out + q;
    }
    case Value::Kind::kList: {
      std::string out = "[";
      for (size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + Repr((*v.list)[k]);
      return out + "]";
    }
    case Value::Kind::kDict: {
      std::string out = "{";
      for (size_t k = 0; k < v.dict->size(); ++k) {
        out += (k ? ", " : "") + Repr(Value::Str((*v.dict)[k].first)) + ": " +
               Repr((*v.dict)[k].second);
      }
      return out + "}";
    }
    default:
      return Text(v);
  }
}

// transformers' tojson: json.dumps(ensure_ascii=False), Python separators.
void ToJson(const Value& v, std::string* out) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      *out += "null";
      break;
    case Value::Kind::kBool:
      *out += v.b ? "true" : "false";
      break;
    case Value::Kind::kInt:
      *out += StrCat(v.i);
      break;
    case Value::Kind::kFloat:
      *out += FloatText(v.f);
      break;
    case Value::Kind::kString:
      AppendJsonString(out, v.s);
      break;
    case Value::Kind::kList:
      *out += "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) *out += ", ";
        ToJson((*v.list)[k], out);
      }
      *out += "]";
      break;
    case Value::Kind::kDict:
      *out += "{";
      for (size_t k = 0; k < v.dict->size(); ++k) {
        if (k) *out += ", ";
        AppendJsonString(out, (*v.dict)[k].first);
        *out += ": ";
        ToJson((*v.dict)[k].second, out);
      }
      *out += "}";
      break;
  }
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kString:
      return a.s == b.s;
    case Value::Kind::kList:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!Equal((*a.list)[k], (*b.list)[k])) return false;
      }
      return true;
    case Value::Kind::kDict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* o = b.Get(k);
        if (o == nullptr || !Equal(v, *o)) return false;
      }
      return true;
    default:
      return true;  // None == None, undefined == undefined.
  }
}

constexpr uint64_t kMaxRepeatBytes = 16 << 20;  // "x" * n
constexpr int64_t kMaxRangeItems = 100000;

absl::Status Error(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("chat template: ", what));
}

// ---- Expression tokens -------------------------------------------------------------

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOp, kEnd };
  Kind kind = Kind::kEnd;
  std::string text;
};

absl::StatusOr<std::vector<Token>> Lex(std::string_view src) {
  std::vector<Token> out;
  size_t p = 0;
  while (p < src.size()) {
    const char c = src[p];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++p;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = p;
      while (e < src.size() && (std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_'))
        ++e;
      out.push_back({Token::Kind::kName, std::string(src.substr(p, e - p))});
      p = e;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t e = p;
      bool is_float = false;
      while (e < src.size() &&
             (std::isdigit(static_cast<unsigned char>(src[e])) || src[e] == '.' || src[e] == '_')) {
        if (src[e] == '.') {
          if (e + 1 >= src.size() || !std::isdigit(static_cast<unsigned char>(src[e + 1]))) break;
          is_float = true;
        }
        ++e;
      }
      std::string digits;
      for (char d : src.substr(p, e - p)) {
        if (d != '_') digits.push_back(d);
      }
      out.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits});
      p = e;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string s;
      size_t e = p + 1;
      for (; e < src.size() && src[e] != c; ++e) {
        if (src[e] != '\\' || e + 1 >= src.size()) {
          s.push_back(src[e]);
          continue;
        }
        const char n = src[++e];
        switch (n) {
          case 'n':
            s.push_back('\n');
            break;
          case 't':
            s.push_back('\t');
            break;
          case 'r':
            s.push_back('\r');
            break;
          case '0':
            s.push_back('\0');
            break;
          case '\\':
          case '\'':
          case '"':
            s.push_back(n);
            break;
          default:
            s.push_back('\\');
            s.push_back(n);
            break;
        }
      }
      if (e >= src.size()) return Error("unterminated string");
      out.push_back({Token::Kind::kString, std::move(s)});
      p = e + 1;
      continue;
    }
    static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                                       "/",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                       "{",  "}",  ".",  ",",  ":",  "|",  "="};
    bool matched = false;
    for (const char* op : kOps) {
      const size_t n = std::char_traits<char>::length(op);
      if (src.substr(p, n) == op) {
        out.push_back({Token::Kind::kOp, op});
        p += n;
        matched = true;
        break;
      }
    }
    if (!matched) return Error(StrCat("unexpected character '", std::string(1, c), "'"));
  }
  out.push_back({Token::Kind::kEnd, ""});
  return out;
}

// ---- Expressions ----------------------------------------------------------------------

struct Context;

struct Expr {
  enum class K {
    kLiteral,
    kName,
    kList,
    kDict,
    kAttr,
    kIndex,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kNeg,
    kNot,
    kBinary,
    kAnd,
    kOr,
    kCond
  };
  K k;
  Value literal;
  std::string name;     // Name, attribute, operator, filter or test.
  bool negate = false;  // "is not", "not in".
  std::vector<std::unique_ptr<Expr>>
      args;  // Operands; call / filter / test arguments after the subject.
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  absl::StatusOr<Value> Eval(Context& ctx) const;
  // args[first..] evaluated in order.
  absl::StatusOr<List> EvalArgs(Context& ctx, size_t first) const;
};
using ExprPtr = std::unique_ptr<Expr>;

ExprPtr Make(Expr::K k) {
  auto e = std::make_unique<Expr>();
  e->k = k;
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}
  const Token& Peek(size_t ahead = 0) const { return t_[std::min(pos_ + ahead, t_.size() - 1)]; }
  bool AtEnd() const { return Peek().kind == Token::Kind::kEnd; }
  bool IsOp(std::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kOp && Peek(ahead).text == op;
  }
  bool IsName(std::string_view n, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kName && Peek(ahead).text == n;
  }
  bool TakeOp(std::string_view op) {
    if (!IsOp(op)) return false;
    ++pos_;
    return true;
  }
  bool TakeName(std::string_view n) {
    if (!IsName(n)) return false;
    ++pos_;
    return true;
  }
  absl::Status ExpectOp(std::string_view op) {
    if (TakeOp(op)) return absl::OkStatus();
    return Error(StrCat("expected '", op, "' but found '", Peek().text, "'"));
  }
  absl::StatusOr<std::string> Name() {
    if (Peek().kind != Token::Kind::kName)
      return Error(StrCat("expected a name, found '", Peek().text, "'"));
    return t_[pos_++].text;
  }

  absl::StatusOr<ExprPtr> Expression() { return Conditional(); }

  // a if cond else b
  absl::StatusOr<ExprPtr> Conditional() {
    ASSIGN_OR_RETURN(ExprPtr value, Or());
    if (!TakeName("if")) return value;
    ASSIGN_OR_RETURN(ExprPtr cond, Or());
    ExprPtr other;
    if (TakeName("else")) {
      ASSIGN_OR_RETURN(other, Conditional());
    } else {
      other = Make(Expr::K::kLiteral);  // Undefined.
    }
    auto e = Make(Expr::K::kCond);
    e->args.push_back(std::move(cond));
    e->args.push_back(std::move(value));
    e->args.push_back(std::move(other));
    return e;
  }
  absl::StatusOr<ExprPtr> Or() {
    ASSIGN_OR_RETURN(ExprPtr left, And());
    while (TakeName("or")) {
      ASSIGN_OR_RETURN(ExprPtr right, And());
      left = Pair(Expr::K::kOr, "or", std::move(left), std::move(right));
    }
    return left;
  }
  absl::StatusOr<ExprPtr> And() {
    ASSIGN_OR_RETURN(ExprPtr left, Not());
    while (TakeName("and")) {
      ASSIGN_OR_RETURN(ExprPtr right, Not());
      left = Pair(Expr::K::kAnd, "and", std::move(left), std::move(right));
    }
    return left;
  }
  absl::StatusOr<ExprPtr> Not() {
    if (IsName("not") && !IsName("in", 1)) {
      ++pos_;
      ASSIGN_OR_RETURN(ExprPtr operand, Not());
      auto e = Make(Expr::K::kNot);
      e->args.push_back(std::move(operand));
      return e;
    }
    return Compare();
  }
  absl::StatusOr<ExprPtr> Compare() {
    ASSIGN_OR_RETURN(ExprPtr left, Additive());
    while (true) {
      std::string op;
      bool negate = false;
      for (const char* o : {"==", "!=", "<=", ">=", "<", ">"}) {
        if (IsOp(o)) op = o;
      }
      if (!op.empty()) {
        ++pos_;
      } else if (IsName("in")) {
        ++pos_;
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        pos_ += 2;
        op = "in";
        negate = true;
      } else {
        return left;
      }
      ASSIGN_OR_RETURN(ExprPtr right, Additive());
      left = Pair(Expr::K::kBinary, op, std::move(left), std::move(right));
      left->negate = negate;
    }
  }
  // Left-associative binary operators of one precedence level, whose
  // operands are parsed by `next`.
  absl::StatusOr<ExprPtr> Level(std::initializer_list<const char*> ops,
                                absl::StatusOr<ExprPtr> (Parser::*next)()) {
    ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    while (true) {
      const char* op = nullptr;
      for (const char* o : ops) {
        if (IsOp(o)) op = o;
      }
      if (op == nullptr) return left;
      ++pos_;
      ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      left = Pair(Expr::K::kBinary, op, std::move(left), std::move(right));
    }
  }
  absl::StatusOr<ExprPtr> Additive() { return Level({"+", "-"}, &Parser::Concat); }
  absl::StatusOr<ExprPtr> Concat() { return Level({"~"}, &Parser::Multiplicative); }
  absl::StatusOr<ExprPtr> Multiplicative() { return Level({"*", "/", "//", "%"}, &Parser::Power); }
  absl::StatusOr<ExprPtr> Power() { return Level({"**"}, &Parser::Unary); }
  absl::StatusOr<ExprPtr> Unary() {
    if (TakeOp("-")) {
      ASSIGN_OR_RETURN(ExprPtr operand, Unary());
      auto e = Make(Expr::K::kNeg);
      e->args.push_back(std::move(operand));
      return e;
    }
    if (TakeOp("+")) return Unary();
    ASSIGN_OR_RETURN(ExprPtr e, Postfix());
    return Filters(std::move(e));
  }
  // x | filter(args) and x is [not] test(args), left to right.
  absl::StatusOr<ExprPtr> Filters(ExprPtr subject) {
    while (true) {
      if (TakeOp("|")) {
        ASSIGN_OR_RETURN(std::string name, Name());
        auto f = Make(Expr::K::kFilter);
        f->name = name;
        f->args.push_back(std::move(subject));
        if (IsOp("(")) RETURN_IF_ERROR(Arguments(f.get()));
        subject = std::move(f);
      } else if (TakeName("is")) {
        auto t = Make(Expr::K::kTest);
        t->negate = TakeName("not");
        ASSIGN_OR_RETURN(t->name, Name());
        t->args.push_back(std::move(subject));
        if (IsOp("(")) {
          RETURN_IF_ERROR(Arguments(t.get()));
        } else if (!AtEnd() &&
                   (Peek().kind == Token::Kind::kString || Peek().kind == Token::Kind::kInt ||
                    Peek().kind == Token::Kind::kFloat)) {
          ASSIGN_OR_RETURN(ExprPtr arg, Primary());  // "x is divisibleby 3" style.
          t->args.push_back(std::move(arg));
        }
        subject = std::move(t);
      } else {
        return subject;
      }
    }
  }
  absl::Status Arguments(Expr* call) {
    RETURN_IF_ERROR(ExpectOp("("));
    while (!TakeOp(")")) {
      if (Peek().kind == Token::Kind::kName && IsOp("=", 1)) {
        std::string key = t_[pos_].text;
        pos_ += 2;
        ASSIGN_OR_RETURN(ExprPtr v, Expression());
        call->kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        ASSIGN_OR_RETURN(ExprPtr v, Expression());
        call->args.push_back(std::move(v));
      }
      if (!TakeOp(",")) {
        RETURN_IF_ERROR(ExpectOp(")"));
        break;
      }
    }
    return absl::OkStatus();
  }
  absl::StatusOr<ExprPtr> Postfix() {
    ASSIGN_OR_RETURN(ExprPtr e, Primary());
    while (true) {
      if (TakeOp(".")) {
        auto a = Make(Expr::K::kAttr);
        ASSIGN_OR_RETURN(a->name, Name());
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (TakeOp("[")) {
        // x[i] or x[a:b:c]
        ExprPtr parts[3];
        int colons = 0;
        while (!IsOp("]")) {
          if (TakeOp(":")) {
            if (++colons > 2) return Error("bad slice");
            continue;
          }
          ASSIGN_OR_RETURN(parts[colons], Expression());
        }
        RETURN_IF_ERROR(ExpectOp("]"));
        auto s = Make(colons == 0 ? Expr::K::kIndex : Expr::K::kSlice);
        s->args.push_back(std::move(e));
        if (colons == 0) {
          if (parts[0] == nullptr) return Error("empty subscript");
          s->args.push_back(std::move(parts[0]));
        } else {
          for (auto& p : parts) s->args.push_back(std::move(p));  // May be null.
        }
        e = std::move(s);
      } else if (IsOp("(")) {
        auto c = Make(Expr::K::kCall);
        c->args.push_back(std::move(e));
        RETURN_IF_ERROR(Arguments(c.get()));
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  absl::StatusOr<ExprPtr> Primary() {
    const Token tok = Peek();
    ++pos_;
    switch (tok.kind) {
      case Token::Kind::kString: {
        auto e = Make(Expr::K::kLiteral);
        e->literal = Value::Str(tok.text);
        while (Peek().kind == Token::Kind::kString)
          e->literal.s += t_[pos_++].text;  // Adjacent literals join.
        return e;
      }
      case Token::Kind::kInt: {
        auto e = Make(Expr::K::kLiteral);
        int64_t v = 0;
        const auto [end, ec] =
            std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        if (ec != std::errc() || end != tok.text.data() + tok.text.size()) {
          return Error(StrCat("integer literal ", Quoted(tok.text), " is out of range"));
        }
        e->literal = Value::Int(v);
        return e;
      }
      case Token::Kind::kFloat: {
        auto e = Make(Expr::K::kLiteral);
        // strtod, not stod: no exception for a literal past double's range
        // (it becomes infinity, as in Python).
        e->literal = Value::Float(std::strtod(tok.text.c_str(), nullptr));
        return e;
      }
      case Token::Kind::kName: {
        auto e = Make(Expr::K::kLiteral);
        if (tok.text == "true" || tok.text == "True") {
          e->literal = Value::Bool(true);
        } else if (tok.text == "false" || tok.text == "False") {
          e->literal = Value::Bool(false);
        } else if (tok.text == "none" || tok.text == "None") {
          e->literal = Value::None();
        } else {
          e->k = Expr::K::kName;
          e->name = tok.text;
        }
        return e;
      }
      case Token::Kind::kOp:
        if (tok.text == "(") {
          ASSIGN_OR_RETURN(ExprPtr inner, Expression());
          if (IsOp(",")) {  // A tuple: evaluated as a list.
            auto l = Make(Expr::K::kList);
            l->args.push_back(std::move(inner));
            while (TakeOp(",")) {
              if (IsOp(")")) break;
              ASSIGN_OR_RETURN(ExprPtr item, Expression());
              l->args.push_back(std::move(item));
            }
            inner = std::move(l);
          }
          RETURN_IF_ERROR(ExpectOp(")"));
          return inner;
        }
        if (tok.text == "[") {
          auto l = Make(Expr::K::kList);
          while (!TakeOp("]")) {
            ASSIGN_OR_RETURN(ExprPtr item, Expression());
            l->args.push_back(std::move(item));
            if (!TakeOp(",")) {
              RETURN_IF_ERROR(ExpectOp("]"));
              break;
            }
          }
          return l;
        }
        if (tok.text == "{") {
          auto d = Make(Expr::K::kDict);
          while (!TakeOp("}")) {
            ASSIGN_OR_RETURN(ExprPtr key, Expression());
            RETURN_IF_ERROR(ExpectOp(":"));
            ASSIGN_OR_RETURN(ExprPtr value, Expression());
            d->args.push_back(std::move(key));
            d->args.push_back(std::move(value));
            if (!TakeOp(",")) {
              RETURN_IF_ERROR(ExpectOp("}"));
              break;
            }
          }
          return d;
        }
        break;
      case Token::Kind::kEnd:
        return Error("unexpected end of expression");
    }
    return Error(StrCat("unexpected '", tok.text, "'"));
  }

 private:
  static ExprPtr Pair(Expr::K k, std::string op, ExprPtr a, ExprPtr b) {
    auto e = Make(k);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }
  std::vector<Token> t_;
  size_t pos_ = 0;
};

// ---- Evaluation ---------------------------------------------------------------------------

struct Context {
  std::vector<std::map<std::string, Value>> scopes;
  Value Lookup(const std::string& name) const {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }
};

absl::StatusOr<List> Items(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kList:
      return *v.list;
    case Value::Kind::kDict: {  // Iterating a dict gives its keys.
      List keys;
      for (const auto& [k, val] : *v.dict) keys.push_back(Value::Str(k));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (size_t p = 0; p < v.s.size();) {  // By UTF-8 character.
        size_t n = 1;
        while (p + n < v.s.size() && (static_cast<unsigned char>(v.s[p + n]) & 0xC0) == 0x80) ++n;
        chars.push_back(Value::Str(v.s.substr(p, n)));
        p += n;
      }
      return chars;
    }
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return List{};
    default:
      return Error(StrCat("cannot iterate over ", Text(v)));
  }
}

int64_t Length(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString: {
      int64_t n = 0;
      for (unsigned char c : v.s) n += (c & 0xC0) != 0x80;
      return n;
    }
    case Value::Kind::kList:
      return static_cast<int64_t>(v.list->size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict->size());
    default:
      return 0;
  }
}

std::string Strip(std::string s, std::string_view chars, bool left, bool right) {
  auto strip_char = [&](char c) {
    return chars.empty() ? std::isspace(static_cast<unsigned char>(c)) != 0
                         : chars.find(c) != std::string_view::npos;
  };
  size_t b = 0, e = s.size();
  while (left && b < e && strip_char(s[b])) ++b;
  while (right && e > b && strip_char(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string Capitalize(const std::string& s) {
  std::string out;
  for (size_t k = 0; k < s.size(); ++k) {
    out.push_back(static_cast<char>(k == 0 ? std::toupper(static_cast<unsigned char>(s[k]))
                                           : std::tolower(static_cast<unsigned char>(s[k]))));
  }
  return out;
}

std::string Title(const std::string& s) {
  std::string out;
  bool start = true;
  for (char c : s) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    out.push_back(static_cast<char>(alpha && start ? std::toupper(static_cast<unsigned char>(c))
                                                   : std::tolower(static_cast<unsigned char>(c))));
    start = !alpha;
  }
  return out;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

absl::StatusOr<Value> Index(const Value& base, const Value& key) {
  if (base.kind == Value::Kind::kDict) {
    if (key.kind != Value::Kind::kString) return Value();
    const Value* v = base.Get(key.s);
    return v ? *v : Value();
  }
  if (base.kind == Value::Kind::kList || base.kind == Value::Kind::kString) {
    if (key.kind != Value::Kind::kInt) return Error("list index must be an integer");
    ASSIGN_OR_RETURN(List items, Items(base));
    int64_t i = key.i < 0 ? key.i + static_cast<int64_t>(items.size()) : key.i;
    if (i < 0 || i >= static_cast<int64_t>(items.size())) return Value();  // Undefined, as Jinja.
    return items[i];
  }
  return Value();
}

absl::StatusOr<Value> CallMethod(const Value& self, const std::string& name, const List& args) {
  auto arg_str = [&](size_t k) -> std::string {
    return k < args.size() && args[k].kind == Value::Kind::kString ? args[k].s : "";
  };
  if (self.kind == Value::Kind::kString) {
    const std::string& s = self.s;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      return Value::Str(Strip(s, arg_str(0), name != "rstrip", name != "lstrip"));
    }
    if (name == "startswith") return Value::Bool(s.starts_with(arg_str(0)));
    if (name == "endswith") return Value::Bool(s.ends_with(arg_str(0)));
    if (name == "upper" || name == "lower") {
      std::string out = s;
      for (char& c : out)
        c = static_cast<char>(name == "upper" ? std::toupper(static_cast<unsigned char>(c))
                                              : std::tolower(static_cast<unsigned char>(c)));
      return Value::Str(out);
    }
    if (name == "capitalize") return Value::Str(Capitalize(s));
    if (name == "title") return Value::Str(Title(s));
    if (name == "replace") return Value::Str(ReplaceAll(s, arg_str(0), arg_str(1)));
    if (name == "split") {
      List parts;
      const std::string sep = arg_str(0);
      if (sep.empty()) {  // Runs of whitespace.
        size_t p = 0;
        while (p < s.size()) {
          while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p]))) ++p;
          size_t e = p;
          while (e < s.size() && !std::isspace(static_cast<unsigned char>(s[e]))) ++e;
          if (e > p) parts.push_back(Value::Str(s.substr(p, e - p)));
          p = e;
        }
      } else {
        size_t p = 0;
        for (size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, p)) {
          parts.push_back(Value::Str(s.substr(p, at - p)));
          p = at + sep.size();
        }
        parts.push_back(Value::Str(s.substr(p)));
      }
      return Value::MakeList(std::move(parts));
    }
    if (name == "join") {
      if (args.empty()) return Error("join needs a list");
      ASSIGN_OR_RETURN(List items, Items(args[0]));
      std::string out;
      for (size_t k = 0; k < items.size(); ++k) out += (k ? s : "") + Text(items[k]);
      return Value::Str(out);
    }
  }
  if (self.kind == Value::Kind::kDict) {
    if (name == "items" || name == "keys" || name == "values") {
      List out;
      for (const auto& [k, v] : *self.dict) {
        if (name == "items") {
          out.push_back(Value::MakeList({Value::Str(k), v}));
        } else {
          out.push_back(name == "keys" ? Value::Str(k) : v);
        }
      }
      return Value::MakeList(std::move(out));
    }
    if (name == "get") {
      const Value* v =
          args.empty() || args[0].kind != Value::Kind::kString ? nullptr : self.Get(args[0].s);
      if (v != nullptr) return *v;
      return args.size() > 1 ? args[1] : Value::None();
    }
  }
  return Error(StrCat("unsupported method ", name, "()"));
}

// Python's integers are unbounded; ours are int64, so a result beyond it is an error rather
// than undefined behaviour (as is a result that cannot be represented, like INT64_MIN // -1).
absl::StatusOr<Value> IntArith(std::string_view op, const Value& a, const Value& b) {
  const int64_t x = a.kind == Value::Kind::kBool ? a.b : a.i;
  const int64_t y = b.kind == Value::Kind::kBool ? b.b : b.i;
  const auto overflow = [&] {
    return Error(StrCat("integer result of ", x, " ", op, " ", y, " is out of range"));
  };
  int64_t r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) return overflow();
    return Value::Int(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) return overflow();
    return Value::Int(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) return overflow();
    return Value::Int(r);
  }
  if (op == "**") {
    if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
    r = 1;
    int64_t base = x;
    for (int64_t e = y; e > 0; e >>= 1) {  // Square and multiply, every step checked.
      if ((e & 1) != 0 && __builtin_mul_overflow(r, base, &r)) return overflow();
      if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
    }
    return Value::Int(r);
  }
  if (y == 0) return Error("division by zero");
  if (op == "/") return Value::Float(static_cast<double>(x) / static_cast<double>(y));
  if (y == -1) {  // x // -1 and x % -1, without INT64_MIN's overflow.
    if (op == "%") return Value::Int(0);
    if (op == "//") {
      if (x == INT64_MIN) return overflow();
      return Value::Int(-x);
    }
  }
  if (op == "//") return Value::Int(x / y - ((x % y != 0 && ((x < 0) != (y < 0))) ? 1 : 0));
  if (op == "%") {
    const int64_t m = x % y;
    return Value::Int(m != 0 && ((m < 0) != (y < 0)) ? m + y : m);  // Python's sign.
  }
  return Error(StrCat("unsupported operator ", op));
}

// The integer a number holds; an error for NaN, infinities and values beyond int64.
absl::StatusOr<int64_t> ToInt(const Value& v, std::string_view what) {
  if (v.kind == Value::Kind::kInt) return v.i;
  if (v.kind == Value::Kind::kBool) return static_cast<int64_t>(v.b);
  const double d = v.number();
  if (!(d >= -0x1p63 && d < 0x1p63))
    return Error(StrCat(what, " ", d, " is not an integer in range"));
  return static_cast<int64_t>(d);
}

absl::StatusOr<Value> Binary(const std::string& op, const Value& a, const Value& b, bool negate) {
  if (op == "==") return Value::Bool(Equal(a, b));
  if (op == "!=") return Value::Bool(!Equal(a, b));
  if (op == "~") return Value::Str(Text(a) + Text(b));
  if (op == "in") {
    bool found = false;
    if (b.kind == Value::Kind::kString) {
      found = a.kind == Value::Kind::kString && b.s.find(a.s) != std::string::npos;
    } else if (b.kind == Value::Kind::kDict) {
      found = a.kind == Value::Kind::kString && b.Get(a.s) != nullptr;
    } else if (b.kind == Value::Kind::kList) {
      for (const Value& v : *b.list) found |= Equal(a, v);
    } else if (b.defined() && b.kind != Value::Kind::kNone) {
      return Error("'in' needs a string, list or dict");
    }
    return Value::Bool(found != negate);
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    int cmp;
    if (a.is_number() && b.is_number()) {
      cmp = a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
    } else if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kString) {
      cmp = a.s.compare(b.s);
    } else {
      return Error(StrCat("cannot compare ", Repr(a), " and ", Repr(b)));
    }
    return Value::Bool(op == "<"    ? cmp < 0
                       : op == ">"  ? cmp > 0
                       : op == "<=" ? cmp <= 0
                                    : cmp >= 0);
  }
  if (op == "+") {
    if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kString)
      return Value::Str(a.s + b.s);
    if (a.kind == Value::Kind::kList && b.kind == Value::Kind::kList) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::MakeList(std::move(l));
    }
  }
  if (op == "*" && a.kind == Value::Kind::kString && b.kind == Value::Kind::kInt) {
    if (b.i > 0 && a.s.size() > kMaxRepeatBytes / static_cast<uint64_t>(b.i)) {
      return Error(StrCat("string repetition would exceed ", kMaxRepeatBytes, " bytes"));
    }
    std::string out;
    for (int64_t k = 0; k < b.i; ++k) out += a.s;
    return Value::Str(out);
  }
  if (!a.is_number() || !b.is_number()) {
    return Error(StrCat("unsupported operands for ", op, ": ", Repr(a), " and ", Repr(b)));
  }
  if (a.kind != Value::Kind::kFloat && b.kind != Value::Kind::kFloat) return IntArith(op, a, b);
  const double x = a.number(), y = b.number();
  if (op == "+") return Value::Float(x + y);
  if (op == "-") return Value::Float(x - y);
  if (op == "*") return Value::Float(x * y);
  if (op == "**") return Value::Float(std::pow(x, y));
  if (y == 0) return Error("division by zero");
  if (op == "/") return Value::Float(x / y);
  if (op == "//") return Value::Float(std::floor(x / y));
  if (op == "%") return Value::Float(x - y * std::floor(x / y));
  return Error(StrCat("unsupported operator ", op));
}

absl::StatusOr<Value> Filter(const std::string& name, const Value& v, const List& args) {
  if (name == "trim")
    return Value::Str(Strip(Text(v), args.empty() ? "" : Text(args[0]), true, true));
  if (name == "length" || name == "count") return Value::Int(Length(v));
  if (name == "upper" || name == "lower") return CallMethod(Value::Str(Text(v)), name, {});
  if (name == "capitalize") return Value::Str(Capitalize(Text(v)));
  if (name == "title") return Value::Str(Title(Text(v)));
  if (name == "string") return Value::Str(Text(v));
  if (name == "safe" || name == "e" || name == "escape") return v;  // No HTML here.
  if (name == "tojson") {
    std::string out;
    ToJson(v, &out);
    return Value::Str(out);
  }
  if (name == "first" || name == "last") {
    ASSIGN_OR_RETURN(List items, Items(v));
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(List items, Items(v));
    std::string out;
    for (size_t k = 0; k < items.size(); ++k)
      out += (k && !args.empty() ? Text(args[0]) : "") + Text(items[k]);
    return Value::Str(out);
  }
  if (name == "default" || name == "d") {
    const bool use_default = !v.defined() || (args.size() > 1 && Truthy(args[1]) && !Truthy(v));
    return use_default ? (args.empty() ? Value::Str("") : args[0]) : v;
  }
  if (name == "replace") {
    if (args.size() < 2) return Error("replace needs two arguments");
    return Value::Str(ReplaceAll(Text(v), Text(args[0]), Text(args[1])));
  }
  if (name == "int") {
    if (v.is_number()) {
      ASSIGN_OR_RETURN(int64_t i, ToInt(v, "int() of"));
      return Value::Int(i);
    }
    char* end = nullptr;
    const std::string s = Text(v);
    const long long i = std::strtoll(s.c_str(), &end, 10);
    return Value::Int(end != s.c_str() ? i : 0);
  }
  if (name == "list") {
    ASSIGN_OR_RETURN(List items, Items(v));
    return Value::MakeList(std::move(items));
  }
  if (name == "items") return CallMethod(v, "items", {});
  return Error(StrCat("unsupported filter ", name));
}

absl::StatusOr<bool> Test(const std::string& name, const Value& v, const List& args) {
  if (name == "defined") return v.defined();
  if (name == "undefined") return !v.defined();
  if (name == "none") return v.kind == Value::Kind::kNone;
  if (name == "string") return v.kind == Value::Kind::kString;
  if (name == "number") return v.kind == Value::Kind::kInt || v.kind == Value::Kind::kFloat;
  if (name == "integer") return v.kind == Value::Kind::kInt;
  if (name == "float") return v.kind == Value::Kind::kFloat;
  if (name == "boolean") return v.kind == Value::Kind::kBool;
  if (name == "true") return v.kind == Value::Kind::kBool && v.b;
  if (name == "false") return v.kind == Value::Kind::kBool && !v.b;
  if (name == "mapping") return v.kind == Value::Kind::kDict;
  if (name == "sequence" || name == "iterable") {
    return v.kind == Value::Kind::kList || v.kind == Value::Kind::kString ||
           v.kind == Value::Kind::kDict;
  }
  if (name == "odd" || name == "even") {
    if (v.kind != Value::Kind::kInt) return Error(StrCat("'", name, "' needs an integer"));
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    if (v.kind != Value::Kind::kInt || args.empty() || args[0].kind != Value::Kind::kInt ||
        args[0].i == 0) {
      return Error("'divisibleby' needs integers");
    }
    return args[0].i == -1 || v.i % args[0].i == 0;  // INT64_MIN % -1 is undefined in C++.
  }
  if (name == "eq" || name == "equalto" || name == "sameas")
    return !args.empty() && Equal(v, args[0]);
  return Error(StrCat("unsupported test ", name));
}

absl::StatusOr<List> Expr::EvalArgs(Context& ctx, size_t first) const {
  List values;
  for (size_t a = first; a < args.size(); ++a) {
    ASSIGN_OR_RETURN(Value v, args[a]->Eval(ctx));
    values.push_back(std::move(v));
  }
  return values;
}

absl::StatusOr<Value> Expr::Eval(Context& ctx) const {
  switch (k) {
    case K::kLiteral:
      return literal;
    case K::kName:
      return ctx.Lookup(name);
    case K::kList: {
      ASSIGN_OR_RETURN(List out, EvalArgs(ctx, 0));
      return Value::MakeList(std::move(out));
    }
    case K::kDict: {
      Value d = Value::MakeDict();
      for (size_t p = 0; p + 1 < args.size(); p += 2) {
        ASSIGN_OR_RETURN(Value key, args[p]->Eval(ctx));
        ASSIGN_OR_RETURN(Value v, args[p + 1]->Eval(ctx));
        d.Set(Text(key), std::move(v));
      }
      return d;
    }
    case K::kAttr: {
      ASSIGN_OR_RETURN(Value base, args[0]->Eval(ctx));
      return Index(base, Value::Str(name));
    }
    case K::kIndex: {
      ASSIGN_OR_RETURN(Value base, args[0]->Eval(ctx));
      ASSIGN_OR_RETURN(Value key, args[1]->Eval(ctx));
      return Index(base, key);
    }
    case K::kSlice: {
      ASSIGN_OR_RETURN(Value base, args[0]->Eval(ctx));
      std::optional<int64_t> bound[3];
      for (int p = 0; p < 3; ++p) {
        if (args[p + 1] == nullptr) continue;
        ASSIGN_OR_RETURN(Value v, args[p + 1]->Eval(ctx));
        if (v.kind == Value::Kind::kNone) continue;
        if (v.kind != Value::Kind::kInt) return Error("slice bounds must be integers");
        bound[p] = v.i;
      }
      ASSIGN_OR_RETURN(List items, Items(base));
      const int64_t n = static_cast<int64_t>(items.size());
      const int64_t step = bound[2].value_or(1);
      if (step == 0) return Error("slice step cannot be zero");
      auto clamp = [&](std::optional<int64_t> b, int64_t fallback) {
        if (!b) return fallback;
        int64_t x = *b < 0 ? *b + n : *b;
        return step > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
      };
      const int64_t start = clamp(bound[0], step > 0 ? 0 : n - 1),
                    stop = clamp(bound[1], step > 0 ? n : -1);
      List out;
      for (int64_t x = start; step > 0 ? x < stop : x > stop; x += step) out.push_back(items[x]);
      if (base.kind == Value::Kind::kString) {
        std::string s;
        for (const Value& c : out) s += c.s;
        return Value::Str(s);
      }
      return Value::MakeList(std::move(out));
    }
    case K::kCall: {
      ASSIGN_OR_RETURN(List values, EvalArgs(ctx, 1));
      const Expr& callee = *args[0];
      if (callee.k == K::kAttr) {
        ASSIGN_OR_RETURN(Value self, callee.args[0]->Eval(ctx));
        return CallMethod(self, callee.name, values);
      }
      if (callee.k != K::kName) return Error("unsupported call");
      if (callee.name == "raise_exception") {
        return absl::InvalidArgumentError(
            values.empty() ? std::string("the chat template raised an error") : Text(values[0]));
      }
      if (callee.name == "namespace" || callee.name == "dict") {
        Value d = Value::MakeDict();
        for (const auto& [key, e] : kwargs) {
          ASSIGN_OR_RETURN(Value v, e->Eval(ctx));
          d.Set(key, std::move(v));
        }
        return d;
      }
      if (callee.name == "range") {
        int64_t lo = 0, hi = 0, step = 1;
        if (values.empty() || values.size() > 3) return Error("range() takes 1 to 3 arguments");
        for (const Value& v : values) {
          if (!v.is_number()) return Error("range() needs numbers");
        }
        if (values.size() == 1) {
          ASSIGN_OR_RETURN(hi, ToInt(values[0], "range() bound"));
        } else {
          ASSIGN_OR_RETURN(lo, ToInt(values[0], "range() bound"));
          ASSIGN_OR_RETURN(hi, ToInt(values[1], "range() bound"));
        }
        if (values.size() == 3) {
          ASSIGN_OR_RETURN(step, ToInt(values[2], "range() step"));
        }
        if (step == 0) return Error("range() step must not be zero");
        const __int128 span = static_cast<__int128>(hi) - lo;  // No int64 overflow here.
        if (span / step > kMaxRangeItems) {
          return Error(StrCat("range() would have more than ", kMaxRangeItems, " items"));
        }
        List out;
        for (__int128 x = lo; step > 0 ? x < hi : x > hi; x += step) {
          out.push_back(Value::Int(static_cast<int64_t>(x)));
        }
        return Value::MakeList(std::move(out));
      }
      if (callee.name == "strftime_now") {
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&now, &tm);
        char buf[128];
        const std::string fmt = values.empty() ? "%Y-%m-%d" : Text(values[0]);
        const size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
        return Value::Str(std::string(buf, n));
      }
      return Error(StrCat("unsupported function ", callee.name, "()"));
    }
    case K::kFilter: {
      ASSIGN_OR_RETURN(Value subject, args[0]->Eval(ctx));
      ASSIGN_OR_RETURN(List values, EvalArgs(ctx, 1));
      return Filter(name, subject, values);
    }
    case K::kTest: {
      ASSIGN_OR_RETURN(Value subject, args[0]->Eval(ctx));
      ASSIGN_OR_RETURN(List values, EvalArgs(ctx, 1));
      ASSIGN_OR_RETURN(bool r, Test(name, subject, values));
      return Value::Bool(r != negate);
    }
    case K::kNeg: {
      ASSIGN_OR_RETURN(Value v, args[0]->Eval(ctx));
      if (v.kind == Value::Kind::kInt) {
        if (v.i == INT64_MIN) return Error("integer result of -(-2**63) is out of range");
        return Value::Int(-v.i);
      }
      if (v.kind == Value::Kind::kFloat) return Value::Float(-v.f);
      return Error("unary minus needs a number");
    }
    case K::kNot: {
      ASSIGN_OR_RETURN(Value v, args[0]->Eval(ctx));
      return Value::Bool(!Truthy(v));
    }
    case K::kAnd: {  // Python semantics: the deciding operand.
      ASSIGN_OR_RETURN(Value a, args[0]->Eval(ctx));
      if (!Truthy(a)) return a;
      return args[1]->Eval(ctx);
    }
    case K::kOr: {
      ASSIGN_OR_RETURN(Value a, args[0]->Eval(ctx));
      if (Truthy(a)) return a;
      return args[1]->Eval(ctx);
    }
    case K::kCond: {
      ASSIGN_OR_RETURN(Value c, args[0]->Eval(ctx));
      return Truthy(c) ? args[1]->Eval(ctx) : args[2]->Eval(ctx);
    }
    case K::kBinary: {
      ASSIGN_OR_RETURN(Value a, args[0]->Eval(ctx));
      ASSIGN_OR_RETURN(Value b, args[1]->Eval(ctx));
      return Binary(name, a, b, negate);
    }
  }
  return Error("bad expression");
}

// ---- Template structure ------------------------------------------------------------------

// A piece of the source: text, {{ expression }} or {% statement %}.
struct Segment {
  enum class Kind { kText, kOutput, kStatement };
  Kind kind;
  std::string text;
};

// Splits the source, applying whitespace control: "-" inside a tag strips
// the whitespace next to it; trim_blocks drops the first newline after a
// block or comment; lstrip_blocks drops spaces and tabs between a line's
// start and a block or comment tag.
absl::StatusOr<std::vector<Segment>> Split(const std::string& src) {
  std::vector<Segment> out;
  size_t p = 0;
  bool strip_next = false, trim_newline = false;
  while (p <= src.size()) {
    size_t open = src.find('{', p);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' &&
           src[open + 1] != '%' && src[open + 1] != '#') {
      open = src.find('{', open + 1);
    }
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(p, open == std::string::npos ? std::string::npos : open - p);
    if (strip_next) {
      text = Strip(text, "", true, false);
    } else if (trim_newline) {
      if (text.starts_with("\r\n")) {
        text.erase(0, 2);
      } else if (text.starts_with("\n")) {
        text.erase(0, 1);
      }
    }
    strip_next = trim_newline = false;
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::Kind::kText, text});
      break;
    }
    const char kind = src[open + 1];
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t body = open + 2;
    const bool minus_left = body < src.size() && src[body] == '-';
    const bool plus_left = body < src.size() && src[body] == '+';
    if (minus_left || plus_left) ++body;
    const size_t end = src.find(close, body);
    if (end == std::string::npos) return Error(StrCat("unclosed tag at byte ", open));
    size_t body_end = end;
    const bool minus_right = body_end > body && src[body_end - 1] == '-';
    if (minus_right || (body_end > body && src[body_end - 1] == '+')) --body_end;
    if (minus_left) {
      text = Strip(text, "", false, true);
    } else if (kind != '{' && !plus_left) {
      // lstrip_blocks: spaces and tabs between the line's start (in the
      // source) and the tag.
      size_t q = open;
      while (q > p && (src[q - 1] == ' ' || src[q - 1] == '\t')) --q;
      if (q == 0 || src[q - 1] == '\n') text.erase(text.size() - std::min(text.size(), open - q));
    }
    if (!text.empty()) out.push_back({Segment::Kind::kText, text});
    const std::string inner = src.substr(body, body_end - body);
    if (kind == '{') {
      out.push_back({Segment::Kind::kOutput, inner});
    } else if (kind == '%') {
      out.push_back({Segment::Kind::kStatement, inner});
    }
    strip_next = minus_right;
    trim_newline = kind != '{';
    p = end + 2;
  }
  return out;
}

}  // namespace

struct ChatTemplate::Node {
  enum class K { kText, kOutput, kIf, kFor, kSet, kBreak, kContinue };
  K k;
  std::string text;
  ExprPtr expr;  // Output, set value, for iterable.
  std::vector<std::pair<ExprPtr, std::vector<std::unique_ptr<Node>>>> branches;  // If (null: else).
  std::vector<std::string> targets;  // For variables; set target (name, or namespace + attribute).
  ExprPtr filter;                    // for ... if filter
  std::vector<std::unique_ptr<Node>> body, else_body;
};

namespace {

using Node = ChatTemplate::Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  // Parses until one of `ends` (a statement's first word); returns it in
  // *end ("" at the end of the source).
  absl::Status Block(NodeList* out, const std::vector<std::string>& ends, std::string* end,
                     std::unique_ptr<Parser>* end_parser) {
    while (pos_ < segs_.size()) {
      const Segment& s = segs_[pos_++];
      if (s.kind == Segment::Kind::kText) {
        auto n = std::make_unique<Node>();
        n->k = Node::K::kText;
        n->text = s.text;
        out->push_back(std::move(n));
        continue;
      }
      ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(s.text));
      auto p = std::make_unique<Parser>(std::move(tokens));
      if (s.kind == Segment::Kind::kOutput) {
        auto n = std::make_unique<Node>();
        n->k = Node::K::kOutput;
        ASSIGN_OR_RETURN(n->expr, p->Expression());
        if (!p->AtEnd())
          return Error(StrCat("unexpected '", p->Peek().text, "' in {{ ", s.text, " }}"));
        out->push_back(std::move(n));
        continue;
      }
      ASSIGN_OR_RETURN(std::string word, p->Name());
      if (std::find(ends.begin(), ends.end(), word) != ends.end()) {
        *end = word;
        *end_parser = std::move(p);
        return absl::OkStatus();
      }
      if (word == "if") {
        auto n = std::make_unique<Node>();
        n->k = Node::K::kIf;
        ASSIGN_OR_RETURN(ExprPtr cond, p->Expression());
        while (true) {
          NodeList body;
          std::string e;
          std::unique_ptr<Parser> ep;
          RETURN_IF_ERROR(Block(&body, {"elif", "else", "endif"}, &e, &ep));
          if (e.empty()) return Error("{% if %} without {% endif %}");
          n->branches.emplace_back(std::move(cond), std::move(body));
          if (e == "endif") break;
          if (e == "elif") {
            ASSIGN_OR_RETURN(cond, ep->Expression());
          } else {
            cond = nullptr;
            NodeList else_body;
            RETURN_IF_ERROR(Block(&else_body, {"endif"}, &e, &ep));
            if (e.empty()) return Error("{% else %} without {% endif %}");
            n->branches.emplace_back(nullptr, std::move(else_body));
            break;
          }
        }
        out->push_back(std::move(n));
      } else if (word == "for") {
        auto n = std::make_unique<Node>();
        n->k = Node::K::kFor;
        do {
          ASSIGN_OR_RETURN(std::string t, p->Name());
          n->targets.push_back(t);
        } while (p->TakeOp(","));
        if (!p->TakeName("in")) return Error("expected 'in' in {% for %}");
        ASSIGN_OR_RETURN(n->expr, p->Or());  // Not Conditional: "if" may follow.
        if (p->TakeName("if")) {
          ASSIGN_OR_RETURN(n->filter, p->Expression());
        }
        std::string e;
        std::unique_ptr<Parser> ep;
        RETURN_IF_ERROR(Block(&n->body, {"else", "endfor"}, &e, &ep));
        if (e.empty()) return Error("{% for %} without {% endfor %}");
        if (e == "else") {
          RETURN_IF_ERROR(Block(&n->else_body, {"endfor"}, &e, &ep));
          if (e.empty()) return Error("{% for %} without {% endfor %}");
        }
        out->push_back(std::move(n));
      } else if (word == "set") {
        auto n = std::make_unique<Node>();
        n->k = Node::K::kSet;
        ASSIGN_OR_RETURN(std::string name, p->Name());
        n->targets.push_back(name);
        if (p->TakeOp(".")) {
          ASSIGN_OR_RETURN(std::string attr, p->Name());
          n->targets.push_back(attr);
        }
        if (!p->TakeOp("=")) return Error("block {% set %} is not supported");
        ASSIGN_OR_RETURN(n->expr, p->Expression());
        out->push_back(std::move(n));
      } else if (word == "break" || word == "continue") {
        auto n = std::make_unique<Node>();
        n->k = word == "break" ? Node::K::kBreak : Node::K::kContinue;
        out->push_back(std::move(n));
      } else if (word == "generation" || word == "endgeneration") {
        // transformers' marker for assistant tokens: renders its content.
        continue;
      } else {
        return Error(StrCat("unsupported statement {% ", word, " %}"));
      }
      if (!p->AtEnd() && word != "generation" && word != "endgeneration") {
        return Error(StrCat("unexpected '", p->Peek().text, "' in {% ", s.text, " %}"));
      }
    }
    *end = "";
    return absl::OkStatus();
  }

 private:
  std::vector<Segment> segs_;
  size_t pos_ = 0;
};

enum class Flow { kNormal, kBreak, kContinue };

absl::StatusOr<Flow> Run(const NodeList& nodes, Context& ctx, std::string* out) {
  for (const auto& n : nodes) {
    switch (n->k) {
      case Node::K::kText:
        *out += n->text;
        break;
      case Node::K::kOutput: {
        ASSIGN_OR_RETURN(Value v, n->expr->Eval(ctx));
        *out += Text(v);
        break;
      }
      case Node::K::kIf:
        for (const auto& [cond, body] : n->branches) {
          bool take = cond == nullptr;
          if (!take) {
            ASSIGN_OR_RETURN(Value c, cond->Eval(ctx));
            take = Truthy(c);
          }
          if (take) {
            ASSIGN_OR_RETURN(Flow f, Run(body, ctx, out));
            if (f != Flow::kNormal) return f;
            break;
          }
        }
        break;
      case Node::K::kSet: {
        ASSIGN_OR_RETURN(Value v, n->expr->Eval(ctx));
        if (n->targets.size() == 1) {
          ctx.scopes.back()[n->targets[0]] = std::move(v);
        } else {
          Value ns = ctx.Lookup(n->targets[0]);
          if (ns.kind != Value::Kind::kDict)
            return Error(StrCat(n->targets[0], " is not a namespace"));
          ns.Set(n->targets[1], std::move(v));
        }
        break;
      }
      case Node::K::kFor: {
        ASSIGN_OR_RETURN(Value seq, n->expr->Eval(ctx));
        ASSIGN_OR_RETURN(List all, Items(seq));
        ctx.scopes.emplace_back();
        // The loop filter runs first, so loop.* counts the kept items.
        List items;
        for (const Value& item : all) {
          if (n->filter != nullptr) {
            RETURN_IF_ERROR([&]() -> absl::Status {
              if (n->targets.size() == 1) {
                ctx.scopes.back()[n->targets[0]] = item;
              } else {
                ASSIGN_OR_RETURN(List parts, Items(item));
                for (size_t t = 0; t < n->targets.size(); ++t) {
                  ctx.scopes.back()[n->targets[t]] = t < parts.size() ? parts[t] : Value();
                }
              }
              return absl::OkStatus();
            }());
            ASSIGN_OR_RETURN(Value keep, n->filter->Eval(ctx));
            if (!Truthy(keep)) continue;
          }
          items.push_back(item);
        }
        const int64_t len = static_cast<int64_t>(items.size());
        for (int64_t idx = 0; idx < len; ++idx) {
          auto& scope = ctx.scopes.back();
          if (n->targets.size() == 1) {
            scope[n->targets[0]] = items[idx];
          } else {
            ASSIGN_OR_RETURN(List parts, Items(items[idx]));
            for (size_t t = 0; t < n->targets.size(); ++t)
              scope[n->targets[t]] = t < parts.size() ? parts[t] : Value();
          }
          scope["loop"] = Value::MakeDict({{"index", Value::Int(idx + 1)},
                                           {"index0", Value::Int(idx)},
                                           {"revindex", Value::Int(len - idx)},
                                           {"revindex0", Value::Int(len - idx - 1)},
                                           {"first", Value::Bool(idx == 0)},
                                           {"last", Value::Bool(idx == len - 1)},
                                           {"length", Value::Int(len)},
                                           {"previtem", idx > 0 ? items[idx - 1] : Value()},
                                           {"nextitem", idx + 1 < len ? items[idx + 1] : Value()}});
          ASSIGN_OR_RETURN(Flow f, Run(n->body, ctx, out));
          if (f == Flow::kBreak) break;
        }
        if (len == 0) {
          ASSIGN_OR_RETURN(Flow f, Run(n->else_body, ctx, out));
          (void)f;
        }
        ctx.scopes.pop_back();
        break;
      }
      case Node::K::kBreak:
        return Flow::kBreak;
      case Node::K::kContinue:
        return Flow::kContinue;
    }
  }
  return Flow::kNormal;
}

}  // namespace

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(const std::string& source) {
  ASSIGN_OR_RETURN(std::vector<Segment> segs, Split(source));
  TemplateParser parser(std::move(segs));
  auto t = std::unique_ptr<ChatTemplate>(new ChatTemplate());
  std::string end;
  std::unique_ptr<Parser> ep;
  RETURN_IF_ERROR(parser.Block(&t->body_, {"endif", "endfor", "elif", "else"}, &end, &ep));
  if (!end.empty()) return Error(StrCat("{% ", end, " %} without its opening statement"));
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const ChatInput& input) const {
  Context ctx;
  ctx.scopes.emplace_back();
  List messages;
  for (const ChatMessage& m : input.messages) {
    messages.push_back(
        Value::MakeDict({{"role", Value::Str(m.role)}, {"content", Value::Str(m.content)}}));
  }
  auto& globals = ctx.scopes.back();
  globals["messages"] = Value::MakeList(std::move(messages));
  globals["add_generation_prompt"] = Value::Bool(input.add_generation_prompt);
  globals["bos_token"] = Value::Str(input.bos_token);
  globals["eos_token"] = Value::Str(input.eos_token);
  ctx.scopes.emplace_back();  // Template-level sets.
  std::string out;
  auto flow = Run(body_, ctx, &out);
  if (!flow.ok()) return flow.status();
  return out;
}

absl::StatusOr<RenderedChat> RenderChat(const ChatTemplate& tmpl, const TokenizerInfo& info,
                                        const std::vector<ChatMessage>& messages) {
  RenderedChat out;
  ASSIGN_OR_RETURN(out.text, tmpl.Render({messages, true, info.bos_token, info.eos_token}));
  if (!info.bos_token.empty() && info.bos_id >= 0 && out.text.starts_with(info.bos_token)) {
    out.text.erase(0, info.bos_token.size());
    out.add_bos = true;
  }
  return out;
}

}  // namespace quiver::llm
