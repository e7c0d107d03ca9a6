// Jinja parser: a recursive-descent twin of jinja2/parser.py for the subset chat templates use.
#include "chat/jinja_parser.h"

#include <initializer_list>
#include <string_view>

namespace strata::chat::jinja {
namespace {

// Nesting deeper than this (parentheses, blocks, unary chains) is refused rather than
// risking the stack on a hostile template.
constexpr int kMaxNesting = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Result<Body> parse_all() {
    Body body;
    std::string end;
    STRATA_RETURN_IF_ERROR(subparse({}, body, end));
    if (!end.empty()) return fail_unsupported("unexpected '" + end + "'");
    return body;
  }

 private:
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const {
    return cur().type == TokenType::kOperator && cur().text == op;
  }
  bool is_name(std::string_view name) const {
    return cur().type == TokenType::kName && cur().text == name;
  }
  bool at_tag_end() const {
    return cur().type == TokenType::kBlockEnd || cur().type == TokenType::kVarEnd ||
           cur().type == TokenType::kEof;
  }

  std::string where() const { return "template line " + std::to_string(cur().line) + ": "; }
  Status fail(const std::string& what) const {
    return error(ErrorCode::kInvalidArgument, where() + what);
  }
  Status fail_unsupported(const std::string& what) const {
    return error(ErrorCode::kUnsupported, where() + what);
  }
  std::string describe() const {
    switch (cur().type) {
      case TokenType::kEof:
        return "end of template";
      case TokenType::kBlockEnd:
        return "'%}'";
      case TokenType::kVarEnd:
        return "'}}'";
      case TokenType::kString:
        return "string";
      default:
        return "'" + cur().text + "'";
    }
  }

  Status expect_op(std::string_view op) {
    if (!is_op(op)) return fail("expected '" + std::string(op) + "', got " + describe());
    advance();
    return Status::ok();
  }
  Status expect_block_end() {
    if (cur().type != TokenType::kBlockEnd) return fail("expected '%}', got " + describe());
    advance();
    return Status::ok();
  }
  Result<std::string> expect_name() {
    if (cur().type != TokenType::kName) return fail("expected a name, got " + describe());
    std::string n = cur().text;
    advance();
    return n;
  }

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Statements until a block tag whose name is in `ends`; leaves that name in `end_found`
  // and the position just after it.
  Status subparse(std::initializer_list<std::string_view> ends, Body& body,
                  std::string& end_found) {
    while (cur().type != TokenType::kEof) {
      const Token& t = cur();
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == TokenType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = t.line;
        advance();
        STRATA_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
        if (cur().type != TokenType::kVarEnd) return fail("expected '}}', got " + describe());
        advance();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        advance();
        if (cur().type != TokenType::kName) return fail("expected a tag name, got " + describe());
        for (std::string_view e : ends) {
          if (cur().text == e) {
            end_found = cur().text;
            advance();
            return Status::ok();
          }
        }
        STRATA_RETURN_IF_ERROR(parse_statement(body));
      } else {
        return fail("unexpected " + describe());
      }
    }
    if (ends.size() != 0) {
      return fail("unexpected end of template; missing '{% " + std::string(*ends.begin()) + " %}'");
    }
    return Status::ok();
  }

  // Counts nesting while in scope; check() fails past kMaxNesting.
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(++d) {}
    ~DepthGuard() { --depth; }
  };
  Status check_depth() const {
    if (depth_ > kMaxNesting)
      return fail_unsupported("nesting deeper than " + std::to_string(kMaxNesting) + " levels");
    return Status::ok();
  }

  Status parse_statement(Body& body) {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    std::string tag = cur().text;
    int line = cur().line;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    advance();
    std::string end;
    if (tag == "if") {
      s->kind = StmtKind::kIf;
      while (true) {
        STRATA_ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(false));
        STRATA_RETURN_IF_ERROR(expect_block_end());
        Body branch;
        STRATA_RETURN_IF_ERROR(subparse({"endif", "elif", "else"}, branch, end));
        s->branches.emplace_back(std::move(cond), std::move(branch));
        if (end == "elif") continue;
        if (end == "else") {
          STRATA_RETURN_IF_ERROR(expect_block_end());
          STRATA_RETURN_IF_ERROR(subparse({"endif"}, s->else_body, end));
        }
        break;
      }
    } else if (tag == "for") {
      s->kind = StmtKind::kFor;
      STRATA_RETURN_IF_ERROR(parse_targets(s->targets));
      if (!is_name("in")) return fail("expected 'in' in for loop, got " + describe());
      advance();
      STRATA_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true));
      if (is_name("if")) {
        advance();
        STRATA_ASSIGN_OR_RETURN(s->cond, parse_expression(true));
      }
      if (is_name("recursive")) return fail_unsupported("recursive for loops are not supported");
      STRATA_RETURN_IF_ERROR(expect_block_end());
      STRATA_RETURN_IF_ERROR(subparse({"endfor", "else"}, s->body, end));
      if (end == "else") {
        STRATA_RETURN_IF_ERROR(expect_block_end());
        STRATA_RETURN_IF_ERROR(subparse({"endfor"}, s->else_body, end));
      }
    } else if (tag == "set") {
      STRATA_RETURN_IF_ERROR(parse_set(*s, end));
    } else if (tag == "macro") {
      STRATA_RETURN_IF_ERROR(parse_macro(*s, end));
    } else if (tag == "filter") {
      s->kind = StmtKind::kFilterBlock;
      STRATA_ASSIGN_OR_RETURN(s->expr, parse_filter(node(ExprKind::kLiteral, line)));
      STRATA_RETURN_IF_ERROR(expect_block_end());
      STRATA_RETURN_IF_ERROR(subparse({"endfilter"}, s->body, end));
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
    } else if (tag == "generation") {
      // Hugging Face's AssistantTracker extension: the body renders as-is.
      s->kind = StmtKind::kBlock;
      STRATA_RETURN_IF_ERROR(expect_block_end());
      STRATA_RETURN_IF_ERROR(subparse({"endgeneration"}, s->body, end));
    } else {
      --pos_;
      return fail_unsupported("unsupported template tag '" + tag + "'");
    }
    STRATA_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status::ok();
  }

  Status parse_targets(std::vector<std::string>& targets) {
    bool parens = is_op("(");
    if (parens) advance();
    while (true) {
      STRATA_ASSIGN_OR_RETURN(std::string n, expect_name());
      targets.push_back(std::move(n));
      if (!is_op(",")) break;
      advance();
      if (parens && is_op(")")) break;
    }
    if (parens) STRATA_RETURN_IF_ERROR(expect_op(")"));
    return Status::ok();
  }

  Status parse_set(Stmt& s, std::string& end) {
    if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
        peek().text == ".") {
      s.targets.push_back(cur().text);
      advance();
      advance();
      STRATA_ASSIGN_OR_RETURN(s.attr, expect_name());
    } else {
      STRATA_RETURN_IF_ERROR(parse_targets(s.targets));
    }
    if (is_op("=")) {
      advance();
      s.kind = StmtKind::kSet;
      STRATA_ASSIGN_OR_RETURN(s.expr, parse_tuple(true));
      return Status::ok();
    }
    if (!s.attr.empty() || s.targets.size() != 1) return fail("expected '=' in set");
    s.kind = StmtKind::kSetBlock;
    if (is_op("|")) {
      STRATA_ASSIGN_OR_RETURN(s.expr, parse_filter(node(ExprKind::kLiteral, cur().line)));
    }
    STRATA_RETURN_IF_ERROR(expect_block_end());
    return subparse({"endset"}, s.body, end);
  }

  Status parse_macro(Stmt& s, std::string& end) {
    s.kind = StmtKind::kMacro;
    s.macro = std::make_unique<MacroDef>();
    STRATA_ASSIGN_OR_RETURN(s.macro->name, expect_name());
    STRATA_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!s.macro->params.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;
      STRATA_ASSIGN_OR_RETURN(std::string pname, expect_name());
      ExprPtr def;
      if (is_op("=")) {
        advance();
        STRATA_ASSIGN_OR_RETURN(def, parse_expression(true));
      }
      s.macro->params.emplace_back(std::move(pname), std::move(def));
    }
    advance();
    STRATA_RETURN_IF_ERROR(expect_block_end());
    size_t body_start = pos_;
    STRATA_RETURN_IF_ERROR(subparse({"endmacro"}, s.macro->body, end));
    for (size_t i = body_start; i < pos_; ++i) {
      if (toks_[i].type != TokenType::kName) continue;
      s.macro->catch_varargs = s.macro->catch_varargs || toks_[i].text == "varargs";
      s.macro->catch_kwargs = s.macro->catch_kwargs || toks_[i].text == "kwargs";
    }
    return Status::ok();
  }

  // parse_tuple: comma-separated expressions; a tuple if a comma appears.
  Result<ExprPtr> parse_tuple(bool with_condexpr, bool stop_at_if = false,
                              bool explicit_parens = false) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        advance();
        saw_comma = true;
      }
      if (at_tag_end() || is_op(")") || (stop_at_if && (is_name("if") || is_name("recursive"))))
        break;
      STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
      items.push_back(std::move(e));
    }
    if (items.empty() && !explicit_parens) return fail("expected an expression, got " + describe());
    if (items.size() == 1 && !saw_comma) return std::move(items[0]);
    auto t = node(ExprKind::kTuple, line);
    t->args = std::move(items);
    return t;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    STRATA_ASSIGN_OR_RETURN(ExprPtr expr, parse_or());
    while (is_name("if")) {
      int line = cur().line;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr cond, parse_or());
      ExprPtr other;
      if (is_name("else")) {
        advance();
        STRATA_ASSIGN_OR_RETURN(other, parse_expression(true));
      }
      auto c = node(ExprKind::kCondExpr, line);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(expr));
      c->args.push_back(std::move(other));
      expr = std::move(c);
    }
    return expr;
  }

  Result<ExprPtr> parse_or() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      int line = cur().line;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      left = binary(ExprKind::kOr, "or", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      int line = cur().line;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      left = binary(ExprKind::kAnd, "and", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    if (is_name("not")) {
      int line = cur().line;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
      auto n = node(ExprKind::kUnary, line);
      n->name = "not";
      n->args.push_back(std::move(operand));
      return n;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    int line = cur().line;
    STRATA_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(ExprKind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      STRATA_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(rhs));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr binary(ExprKind kind, std::string op, ExprPtr a, ExprPtr b, int line) {
    auto n = node(kind, line);
    n->name = std::move(op);
    n->args.push_back(std::move(a));
    n->args.push_back(std::move(b));
    return n;
  }

  using Level = Result<ExprPtr> (Parser::*)();
  Result<ExprPtr> parse_binary_level(std::initializer_list<std::string_view> ops, Level next) {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    while (true) {
      bool match = false;
      for (auto op : ops) match = match || is_op(op);
      if (!match) break;
      std::string op = cur().text;
      int line = cur().line;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      left = binary(ExprKind::kBinary, op, std::move(left), std::move(right), line);
    }
    return left;
  }
  Result<ExprPtr> parse_math1() { return parse_binary_level({"+", "-"}, &Parser::parse_concat); }
  Result<ExprPtr> parse_concat() { return parse_binary_level({"~"}, &Parser::parse_math2); }
  Result<ExprPtr> parse_math2() {
    return parse_binary_level({"*", "/", "//", "%"}, &Parser::parse_pow);
  }
  Result<ExprPtr> parse_pow() { return parse_binary_level({"**"}, &Parser::parse_unary_filtered); }
  Result<ExprPtr> parse_unary_filtered() { return parse_unary(true); }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    ExprPtr expr;
    if (is_op("-") || is_op("+")) {
      auto n = node(ExprKind::kUnary, cur().line);
      n->name = cur().text;
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      n->args.push_back(std::move(operand));
      expr = std::move(n);
    } else {
      STRATA_ASSIGN_OR_RETURN(expr, parse_primary());
    }
    STRATA_ASSIGN_OR_RETURN(expr, parse_postfix(std::move(expr)));
    if (with_filter) {
      STRATA_ASSIGN_OR_RETURN(expr, parse_filter_expr(std::move(expr)));
    }
    return expr;
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    int line = t.line;
    if (t.type == TokenType::kName) {
      auto n = node(ExprKind::kLiteral, line);
      if (t.text == "true" || t.text == "True")
        n->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False")
        n->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None")
        n->value = Value::none();
      else {
        n->kind = ExprKind::kName;
        n->name = t.text;
      }
      advance();
      return n;
    }
    if (t.type == TokenType::kString) {
      std::string s;
      while (cur().type == TokenType::kString) {
        s += cur().text;
        advance();
      }
      auto n = node(ExprKind::kLiteral, line);
      n->value = Value::string(std::move(s));
      return n;
    }
    if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
      auto n = node(ExprKind::kLiteral, line);
      n->value = t.type == TokenType::kInteger ? Value::integer(std::stoll(t.text))
                                               : Value::floating(std::stod(t.text));
      advance();
      return n;
    }
    if (is_op("(")) {
      advance();
      STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(true, false, true));
      STRATA_RETURN_IF_ERROR(expect_op(")"));
      return e;
    }
    if (is_op("[") || is_op("{")) return parse_collection();
    return fail("unexpected " + describe() + " in expression");
  }

  Result<ExprPtr> parse_collection() {
    bool is_list = is_op("[");
    auto n = node(is_list ? ExprKind::kList : ExprKind::kDict, cur().line);
    advance();
    const char* close = is_list ? "]" : "}";
    while (!is_op(close)) {
      if (!n->args.empty()) {
        STRATA_RETURN_IF_ERROR(expect_op(","));
        if (is_op(close)) break;
      }
      STRATA_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      n->args.push_back(std::move(item));
      if (!is_list) {
        STRATA_RETURN_IF_ERROR(expect_op(":"));
        STRATA_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        n->args.push_back(std::move(value));
      }
    }
    advance();
    return n;
  }

  Result<ExprPtr> parse_postfix(ExprPtr expr) {
    while (true) {
      int line = cur().line;
      if (is_op(".")) {
        advance();
        if (cur().type == TokenType::kName) {
          auto n = node(ExprKind::kGetattr, line);
          n->name = cur().text;
          n->args.push_back(std::move(expr));
          advance();
          expr = std::move(n);
        } else if (cur().type == TokenType::kInteger) {
          auto n = node(ExprKind::kGetitem, line);
          n->args.push_back(std::move(expr));
          auto idx = node(ExprKind::kLiteral, line);
          idx->value = Value::integer(std::stoll(cur().text));
          n->args.push_back(std::move(idx));
          advance();
          expr = std::move(n);
        } else {
          return fail("expected an attribute name after '.', got " + describe());
        }
      } else if (is_op("[")) {
        advance();
        STRATA_ASSIGN_OR_RETURN(expr, parse_subscript(std::move(expr), line));
      } else if (is_op("(")) {
        STRATA_ASSIGN_OR_RETURN(expr, parse_call(std::move(expr)));
      } else {
        return expr;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr obj, int line) {
    std::vector<ExprPtr> parts(3);
    int part = 0;
    bool is_slice = false;
    while (!is_op("]")) {
      if (is_op(":")) {
        is_slice = true;
        if (++part > 2) return fail("too many ':' in slice");
        advance();
        continue;
      }
      if (parts[part]) return fail("expected ']' or ':', got " + describe());
      STRATA_ASSIGN_OR_RETURN(parts[part], parse_expression(true));
    }
    advance();
    if (!is_slice) {
      if (!parts[0]) return fail("empty subscript");
      auto n = node(ExprKind::kGetitem, line);
      n->args.push_back(std::move(obj));
      n->args.push_back(std::move(parts[0]));
      return n;
    }
    auto n = node(ExprKind::kSlice, line);
    n->args.push_back(std::move(obj));
    for (auto& p : parts) n->args.push_back(std::move(p));
    return n;
  }

  // Positional and keyword arguments of a call, filter or test; consumes the parentheses.
  Status parse_call_args(Expr& target) {
    STRATA_RETURN_IF_ERROR(expect_op("("));
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        STRATA_RETURN_IF_ERROR(expect_op(","));
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**"))
        return fail_unsupported("'*args' / '**kwargs' in calls are not supported");
      if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
          peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        STRATA_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        target.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!target.kwargs.empty()) return fail("positional argument follows keyword argument");
        STRATA_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        target.args.push_back(std::move(value));
      }
    }
    advance();
    return Status::ok();
  }

  Result<ExprPtr> parse_call(ExprPtr callee) {
    auto n = node(ExprKind::kCall, cur().line);
    n->args.push_back(std::move(callee));
    STRATA_RETURN_IF_ERROR(parse_call_args(*n));
    return n;
  }

  Result<std::string> parse_dotted_name() {
    STRATA_ASSIGN_OR_RETURN(std::string n, expect_name());
    while (is_op(".")) {
      advance();
      STRATA_ASSIGN_OR_RETURN(std::string part, expect_name());
      n += "." + part;
    }
    return n;
  }

  // One "| name(args)" applied to `expr` (the caller has consumed nothing yet but the '|').
  Result<ExprPtr> parse_filter(ExprPtr expr) {
    if (is_op("|")) advance();
    auto n = node(ExprKind::kFilter, cur().line);
    STRATA_ASSIGN_OR_RETURN(n->name, parse_dotted_name());
    n->args.push_back(std::move(expr));
    if (is_op("(")) STRATA_RETURN_IF_ERROR(parse_call_args(*n));
    return n;
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr expr) {
    while (true) {
      if (is_op("|")) {
        STRATA_ASSIGN_OR_RETURN(expr, parse_filter(std::move(expr)));
      } else if (is_name("is")) {
        STRATA_ASSIGN_OR_RETURN(expr, parse_test(std::move(expr)));
      } else if (is_op("(")) {
        STRATA_ASSIGN_OR_RETURN(expr, parse_call(std::move(expr)));
      } else {
        return expr;
      }
    }
  }

  Result<ExprPtr> parse_test(ExprPtr expr) {
    auto n = node(ExprKind::kTest, cur().line);
    advance();  // 'is'
    if (is_name("not")) {
      n->negated = true;
      advance();
    }
    STRATA_ASSIGN_OR_RETURN(n->name, parse_dotted_name());
    n->args.push_back(std::move(expr));
    if (is_op("(")) {
      STRATA_RETURN_IF_ERROR(parse_call_args(*n));
    } else if ((cur().type == TokenType::kName || cur().type == TokenType::kString ||
                cur().type == TokenType::kInteger || cur().type == TokenType::kFloat ||
                is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) return fail("cannot chain multiple tests with 'is'");
      STRATA_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      STRATA_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      n->args.push_back(std::move(arg));
    }
    return n;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<Body> parse_template(std::vector<Token> tokens) {
  Parser parser(std::move(tokens));
  return parser.parse_all();
}

}  // namespace strata::chat::jinja
