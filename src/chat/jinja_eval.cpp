// Jinja interpreter: statements, expressions, operators, attribute/item access and calls.
#include "chat/jinja_eval.h"

#include <cmath>

#include "chat/jinja_builtins.h"

namespace strata::chat::jinja {

namespace {
constexpr int kMaxCallDepth = 100;  // recursive macros beyond this are a template bug

Status undefined_error(const Value& v, int line) {
  return template_error(
      v.undefined_unsafe() ? ErrorCode::kUnsupported : ErrorCode::kInvalidArgument, line,
      v.undefined_hint());
}

Status type_error(int line, const std::string& op, const Value& a, const Value& b) {
  return template_error(ErrorCode::kInvalidArgument, line,
                        "unsupported operand type(s) for " + op + ": '" + a.type_name() +
                            "' and '" + b.type_name() + "'");
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
}  // namespace

Status template_error(ErrorCode code, int line, const std::string& message) {
  return error(code, "template line " + std::to_string(line) + ": " + message);
}

const Value* Scope::lookup(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    for (const auto& [k, v] : s->vars) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

Interpreter::~Interpreter() {
  for (auto& scope : macro_scopes_) {
    scope->vars.clear();
    scope->parent.reset();
  }
  for (auto& ns : namespaces_) ns.mutable_namespace().items.clear();
}

Status Interpreter::exec_body(const Body& body, const ScopePtr& scope, std::string& out,
                              Flow& flow) {
  for (const auto& stmt : body) {
    STRATA_RETURN_IF_ERROR(exec_stmt(*stmt, scope, out, flow));
    if (flow != Flow::kNormal) return Status::ok();
  }
  return Status::ok();
}

Status Interpreter::exec_stmt(const Stmt& stmt, const ScopePtr& scope, std::string& out,
                              Flow& flow) {
  switch (stmt.kind) {
    case StmtKind::kText:
      out += stmt.text;
      return Status::ok();
    case StmtKind::kOutput: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*stmt.expr, scope));
      append_py_str(v, out);
      return Status::ok();
    }
    case StmtKind::kIf:
      for (const auto& [cond, branch] : stmt.branches) {
        STRATA_ASSIGN_OR_RETURN(Value c, eval(*cond, scope));
        if (c.truthy()) return exec_body(branch, scope, out, flow);
      }
      return exec_body(stmt.else_body, scope, out, flow);
    case StmtKind::kFor:
      return exec_for(stmt, scope, out);
    case StmtKind::kSet:
    case StmtKind::kSetBlock:
      return exec_set(stmt, scope, out);
    case StmtKind::kMacro: {
      auto fn = std::make_shared<Callable>();
      fn->name = stmt.macro->name;
      fn->macro = stmt.macro.get();
      fn->closure = scope;
      macro_scopes_.push_back(scope);
      scope->set(stmt.macro->name, Value::callable(std::move(fn)));
      return Status::ok();
    }
    case StmtKind::kFilterBlock: {
      std::string inner;
      Flow inner_flow = Flow::kNormal;
      STRATA_RETURN_IF_ERROR(exec_body(stmt.body, scope, inner, inner_flow));
      STRATA_ASSIGN_OR_RETURN(CallArgs args, eval_args(*stmt.expr, scope, 1));
      STRATA_ASSIGN_OR_RETURN(
          Value v, apply_filter(*this, stmt.expr->name, Value::string(std::move(inner)), args));
      out += py_str(v);
      return Status::ok();
    }
    case StmtKind::kBreak:
      flow = Flow::kBreak;
      return Status::ok();
    case StmtKind::kContinue:
      flow = Flow::kContinue;
      return Status::ok();
    case StmtKind::kBlock:
      return exec_body(stmt.body, scope, out, flow);
  }
  return Status::ok();
}

Result<ValueList> Interpreter::iterate(const Value& v, int line) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return ValueList{};
    case Kind::kList:
      if (v.is_generator()) return v.take_generator_items();
      return v.as_list();
    case Kind::kDict: {
      ValueList keys;
      for (const auto& kv : v.as_dict().items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      for (auto c : utf8_chars(v.as_string())) chars.push_back(Value::string(std::string(c)));
      return chars;
    }
    default:
      return template_error(ErrorCode::kInvalidArgument, line,
                            std::string("'") + v.type_name() + "' object is not iterable");
  }
}

Status Interpreter::assign_targets(const std::vector<std::string>& targets, const Value& value,
                                   Scope& scope, int line) {
  if (targets.size() == 1) {
    scope.set(targets[0], value);
    return Status::ok();
  }
  STRATA_ASSIGN_OR_RETURN(ValueList items, iterate(value, line));
  if (value.is_undefined() || items.size() != targets.size()) {
    return template_error(ErrorCode::kInvalidArgument, line,
                          "cannot unpack " + std::to_string(items.size()) + " values into " +
                              std::to_string(targets.size()) + " names");
  }
  for (size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], items[i]);
  return Status::ok();
}

Status Interpreter::exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  STRATA_ASSIGN_OR_RETURN(Value seq, eval(*stmt.expr, scope));
  STRATA_ASSIGN_OR_RETURN(ValueList all, iterate(seq, stmt.line));
  ValueList items;
  if (stmt.cond) {
    for (const auto& item : all) {
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      STRATA_RETURN_IF_ERROR(assign_targets(stmt.targets, item, *probe, stmt.line));
      STRATA_ASSIGN_OR_RETURN(Value keep, eval(*stmt.cond, probe));
      if (keep.truthy()) items.push_back(item);
    }
  } else {
    items = std::move(all);
  }
  if (items.empty()) {
    Flow flow = Flow::kNormal;
    return exec_body(stmt.else_body, scope, out, flow);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    auto iter_scope = std::make_shared<Scope>();  // jinja2: loop-body variables reset per iteration
    iter_scope->parent = scope;
    STRATA_RETURN_IF_ERROR(assign_targets(stmt.targets, items[i], *iter_scope, stmt.line));
    ValueDict loop;
    loop.items.reserve(12);
    loop.items.emplace_back("index", Value::integer(i + 1));
    loop.items.emplace_back("index0", Value::integer(i));
    loop.items.emplace_back("revindex", Value::integer(n - i));
    loop.items.emplace_back("revindex0", Value::integer(n - i - 1));
    loop.items.emplace_back("first", Value::boolean(i == 0));
    loop.items.emplace_back("last", Value::boolean(i == n - 1));
    loop.items.emplace_back("length", Value::integer(n));
    loop.items.emplace_back("depth", Value::integer(1));
    loop.items.emplace_back("depth0", Value::integer(0));
    if (i > 0) loop.items.emplace_back("previtem", items[i - 1]);
    if (i + 1 < n) loop.items.emplace_back("nextitem", items[i + 1]);
    auto cycle = std::make_shared<Callable>();
    cycle->name = "loop.cycle";
    cycle->native = [i](Interpreter&, CallArgs& args) -> Result<Value> {
      if (args.positional.empty())
        return template_error(ErrorCode::kInvalidArgument, args.line, "no items for cycling given");
      return args.positional[i % args.positional.size()];
    };
    loop.items.emplace_back("cycle", Value::callable(std::move(cycle)));
    iter_scope->set("loop", Value::make_namespace(std::move(loop)));
    Flow flow = Flow::kNormal;
    STRATA_RETURN_IF_ERROR(exec_body(stmt.body, iter_scope, out, flow));
    if (flow == Flow::kBreak) break;
  }
  return Status::ok();
}

// `{% set ns.text = ns.text ~ a ~ b %}` (or `+` with strings): templates build whole prompts
// this way, one message at a time. Appending in place when nothing else holds the old string
// keeps that linear; the result is the value the plain path computes, operands evaluated in
// the same left-to-right order.
Result<bool> Interpreter::try_append_in_place(const Stmt& stmt, const ScopePtr& scope) {
  std::vector<const Expr*> chain;  // right operands, rightmost first
  const Expr* e = stmt.expr.get();
  while (e->kind == ExprKind::kBinary && (e->name == "~" || e->name == "+")) {
    chain.push_back(e);
    e = e->args[0].get();
  }
  if (chain.empty() || e->kind != ExprKind::kGetattr || e->name != stmt.attr ||
      e->args[0]->kind != ExprKind::kName || e->args[0]->name != stmt.targets[0]) {
    return false;
  }
  const Value* target = scope->lookup(stmt.targets[0]);
  if (!target || !target->is_namespace()) return false;
  STRATA_ASSIGN_OR_RETURN(Value acc, eval(*e, scope));
  std::vector<Value> rights;
  bool appendable = acc.is_string() && !acc.is_markup();
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    STRATA_ASSIGN_OR_RETURN(Value r, eval(*(*it)->args[1], scope));
    if ((*it)->name == "+" && !(r.is_string() && !r.is_markup())) appendable = false;
    rights.push_back(std::move(r));
  }
  ValueDict& attrs = target->mutable_namespace();
  Value* slot = nullptr;
  for (auto& [k, v] : attrs.items) {
    if (k == stmt.attr) slot = &v;
  }
  if (slot && appendable && slot->same_text(acc)) {
    std::string extra;
    for (const Value& r : rights) append_py_str(r, extra);
    acc = Value();  // drop our reference: the namespace may now be the only holder
    if (slot->append_if_unique(extra)) return true;
    acc = *slot;  // shared elsewhere: unchanged, take the plain path
  }
  for (size_t i = 0; i < rights.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(acc, eval_binary(*chain[chain.size() - 1 - i], acc, rights[i]));
  }
  attrs.set(stmt.attr, std::move(acc));
  return true;
}

Status Interpreter::exec_set(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  if (stmt.kind == StmtKind::kSet && !stmt.attr.empty()) {
    STRATA_ASSIGN_OR_RETURN(bool done, try_append_in_place(stmt, scope));
    if (done) return Status::ok();
  }
  Value value;
  if (stmt.kind == StmtKind::kSetBlock) {
    std::string captured;
    Flow flow = Flow::kNormal;
    STRATA_RETURN_IF_ERROR(exec_body(stmt.body, scope, captured, flow));
    value = Value::string(std::move(captured));
    if (stmt.expr) {
      STRATA_ASSIGN_OR_RETURN(CallArgs args, eval_args(*stmt.expr, scope, 1));
      STRATA_ASSIGN_OR_RETURN(value, apply_filter(*this, stmt.expr->name, value, args));
    }
  } else {
    STRATA_ASSIGN_OR_RETURN(value, eval(*stmt.expr, scope));
  }
  if (!stmt.attr.empty()) {
    const Value* target = scope->lookup(stmt.targets[0]);
    if (!target || !target->is_namespace()) {
      return template_error(
          ErrorCode::kInvalidArgument, stmt.line,
          "cannot assign attribute on non-namespace object '" + stmt.targets[0] + "'");
    }
    target->mutable_namespace().set(stmt.attr, std::move(value));
    return Status::ok();
  }
  return assign_targets(stmt.targets, value, *scope, stmt.line);
}

Result<CallArgs> Interpreter::eval_args(const Expr& expr, const ScopePtr& scope, size_t first_arg) {
  CallArgs args;
  args.line = expr.line;
  for (size_t i = first_arg; i < expr.args.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*expr.args[i], scope));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [k, e] : expr.kwargs) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
    args.keyword.emplace_back(k, std::move(v));
  }
  return args;
}

Result<Value> Interpreter::eval(const Expr& expr, const ScopePtr& scope) {
  switch (expr.kind) {
    case ExprKind::kLiteral:
      return expr.value;
    case ExprKind::kName: {
      const Value* v = scope->lookup(expr.name);
      if (!v) return Value::undefined("'" + expr.name + "' is undefined");
      return *v;
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      for (const auto& a : expr.args) {
        STRATA_ASSIGN_OR_RETURN(Value v, eval(*a, scope));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items), expr.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      ValueDict d;
      for (size_t i = 0; i + 1 < expr.args.size(); i += 2) {
        STRATA_ASSIGN_OR_RETURN(Value k, eval(*expr.args[i], scope));
        STRATA_ASSIGN_OR_RETURN(Value v, eval(*expr.args[i + 1], scope));
        if (!k.is_string()) {
          return template_error(ErrorCode::kUnsupported, expr.line,
                                "dict keys other than strings are not supported");
        }
        d.set(k.as_string(), std::move(v));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetattr: {
      STRATA_ASSIGN_OR_RETURN(Value obj, eval(*expr.args[0], scope));
      return getattr(obj, expr.name, expr.line);
    }
    case ExprKind::kGetitem: {
      STRATA_ASSIGN_OR_RETURN(Value obj, eval(*expr.args[0], scope));
      STRATA_ASSIGN_OR_RETURN(Value key, eval(*expr.args[1], scope));
      return getitem(obj, key, expr.line);
    }
    case ExprKind::kSlice:
      return eval_slice(expr, scope);
    case ExprKind::kCall: {
      STRATA_ASSIGN_OR_RETURN(Value callee, eval(*expr.args[0], scope));
      STRATA_ASSIGN_OR_RETURN(CallArgs args, eval_args(expr, scope, 1));
      return call(callee, args);
    }
    case ExprKind::kFilter: {
      STRATA_ASSIGN_OR_RETURN(Value subject, eval(*expr.args[0], scope));
      STRATA_ASSIGN_OR_RETURN(CallArgs args, eval_args(expr, scope, 1));
      return apply_filter(*this, expr.name, subject, args);
    }
    case ExprKind::kTest: {
      STRATA_ASSIGN_OR_RETURN(Value subject, eval(*expr.args[0], scope));
      STRATA_ASSIGN_OR_RETURN(CallArgs args, eval_args(expr, scope, 1));
      STRATA_ASSIGN_OR_RETURN(bool r, apply_test(*this, expr.name, subject, args));
      return Value::boolean(r != expr.negated);
    }
    case ExprKind::kUnary: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*expr.args[0], scope));
      if (expr.name == "not") return Value::boolean(!v.truthy());
      if (v.is_undefined()) return undefined_error(v, expr.line);
      if (!v.is_number()) {
        return template_error(
            ErrorCode::kInvalidArgument, expr.line,
            std::string("bad operand type for unary ") + expr.name + ": '" + v.type_name() + "'");
      }
      if (expr.name == "+") return v.is_float() ? v : Value::integer(v.as_int());
      return v.is_float() ? Value::floating(-v.as_double()) : Value::integer(-v.as_int());
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      STRATA_ASSIGN_OR_RETURN(Value a, eval(*expr.args[0], scope));
      bool short_circuit = expr.kind == ExprKind::kAnd ? !a.truthy() : a.truthy();
      if (short_circuit) return a;
      return eval(*expr.args[1], scope);
    }
    case ExprKind::kBinary: {
      STRATA_ASSIGN_OR_RETURN(Value a, eval(*expr.args[0], scope));
      STRATA_ASSIGN_OR_RETURN(Value b, eval(*expr.args[1], scope));
      return eval_binary(expr, a, b);
    }
    case ExprKind::kCompare:
      return eval_compare(expr, scope);
    case ExprKind::kCondExpr: {
      STRATA_ASSIGN_OR_RETURN(Value c, eval(*expr.args[0], scope));
      if (c.truthy()) return eval(*expr.args[1], scope);
      if (!expr.args[2])
        return Value::undefined(
            "the inline if-expression evaluated to false and no else section was defined");
      return eval(*expr.args[2], scope);
    }
  }
  return template_error(ErrorCode::kInternal, expr.line, "unknown expression");
}

Result<Value> Interpreter::eval_binary(const Expr& expr, const Value& a, const Value& b) {
  const std::string& op = expr.name;
  if (op == "~") {
    std::string s;
    s.reserve((a.is_string() ? a.as_string().size() : 16) +
              (b.is_string() ? b.as_string().size() : 16));
    append_py_str(a, s);
    append_py_str(b, s);
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) return undefined_error(a, expr.line);
  if (b.is_undefined()) return undefined_error(b, expr.line);
  if (a.is_number() && b.is_number()) {
    bool fl = a.is_float() || b.is_float();
    if (op == "+")
      return fl ? Value::floating(a.as_double() + b.as_double())
                : Value::integer(a.as_int() + b.as_int());
    if (op == "-")
      return fl ? Value::floating(a.as_double() - b.as_double())
                : Value::integer(a.as_int() - b.as_int());
    if (op == "*")
      return fl ? Value::floating(a.as_double() * b.as_double())
                : Value::integer(a.as_int() * b.as_int());
    if (op == "**") {
      if (!fl && b.as_int() >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
        return Value::integer(r);
      }
      return Value::floating(std::pow(a.as_double(), b.as_double()));
    }
    if (b.as_double() == 0)
      return template_error(ErrorCode::kInvalidArgument, expr.line, "division by zero");
    if (op == "/") return Value::floating(a.as_double() / b.as_double());
    if (op == "//") {
      if (fl) return Value::floating(std::floor(a.as_double() / b.as_double()));
      return Value::integer(floor_div(a.as_int(), b.as_int()));
    }
    if (op == "%") {
      if (fl) {
        double r = std::fmod(a.as_double(), b.as_double());
        if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
        return Value::floating(r);
      }
      return Value::integer(a.as_int() - floor_div(a.as_int(), b.as_int()) * b.as_int());
    }
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    if (a.is_markup() || b.is_markup()) {  // Markup.__add__ / __radd__ escape the plain side
      return Value::markup((a.is_markup() ? a.as_string() : html_escape(a.as_string())) +
                           (b.is_markup() ? b.as_string() : html_escape(b.as_string())));
    }
    std::string s;
    s.reserve(a.as_string().size() + b.as_string().size());
    s += a.as_string();
    s += b.as_string();
    return Value::string(std::move(s));
  }
  if (op == "+" && a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() &&
      !a.is_generator() && !b.is_generator()) {
    ValueList items = a.as_list();
    items.insert(items.end(), b.as_list().begin(), b.as_list().end());
    return Value::list(std::move(items), a.is_tuple());
  }
  if (op == "*" && !a.is_generator() && !b.is_generator() &&
      (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = (a.is_string() || a.is_list()) ? a : b;
    const Value& count = (a.is_string() || a.is_list()) ? b : a;
    if (count.is_int() || count.is_bool()) {
      int64_t n = std::max<int64_t>(0, count.as_int());
      if (seq.is_string()) {
        std::string s;
        for (int64_t i = 0; i < n; ++i) s += seq.as_string();
        return Value::string(std::move(s));
      }
      ValueList items;
      for (int64_t i = 0; i < n; ++i)
        items.insert(items.end(), seq.as_list().begin(), seq.as_list().end());
      return Value::list(std::move(items), seq.is_tuple());
    }
  }
  if (op == "%" && a.is_string()) {
    return template_error(ErrorCode::kUnsupported, expr.line,
                          "printf-style string formatting ('%') is not supported");
  }
  return type_error(expr.line, op, a, b);
}

Result<Value> Interpreter::eval_compare(const Expr& expr, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value left, eval(*expr.args[0], scope));
  for (size_t i = 0; i < expr.ops.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(Value right, eval(*expr.args[i + 1], scope));
    const std::string& op = expr.ops[i];
    bool r = false;
    if (op == "==")
      r = py_equal(left, right);
    else if (op == "!=")
      r = !py_equal(left, right);
    else if (op == "in" || op == "not in") {
      if (right.is_string()) {
        if (!left.is_string()) {
          return template_error(ErrorCode::kInvalidArgument, expr.line,
                                std::string("'in <string>' requires string as left operand, not ") +
                                    left.type_name());
        }
        r = right.as_string().find(left.as_string()) != std::string::npos;
      } else if (right.is_dict()) {
        r = left.is_string() && right.as_dict().find(left.as_string()) != nullptr;
      } else if (right.is_list() || right.is_undefined()) {
        STRATA_ASSIGN_OR_RETURN(ValueList items, iterate(right, expr.line));
        for (const auto& item : items) r = r || py_equal(left, item);
      } else {
        return template_error(
            ErrorCode::kInvalidArgument, expr.line,
            std::string("argument of type '") + right.type_name() + "' is not iterable");
      }
      if (op == "not in") r = !r;
    } else {
      if (left.is_undefined()) return undefined_error(left, expr.line);
      if (right.is_undefined()) return undefined_error(right, expr.line);
      Result<bool> lt = (op == "<" || op == ">=") ? py_less(left, right) : py_less(right, left);
      if (!lt.is_ok())
        return template_error(ErrorCode::kInvalidArgument, expr.line, lt.status().message());
      if (op == "<" || op == ">")
        r = *lt;
      else
        r = !*lt;  // "<=" is !(b < a); ">=" is !(a < b)
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Result<Value> Interpreter::eval_slice(const Expr& expr, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value obj, eval(*expr.args[0], scope));
  std::optional<int64_t> parts[3];
  for (int i = 0; i < 3; ++i) {
    if (!expr.args[i + 1]) continue;
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*expr.args[i + 1], scope));
    if (v.is_none()) continue;
    if (!v.is_int() && !v.is_bool()) {
      return template_error(ErrorCode::kInvalidArgument, expr.line,
                            "slice indices must be integers or None");
    }
    parts[i] = v.as_int();
  }
  if (obj.is_undefined()) return undefined_error(obj, expr.line);
  std::vector<std::string_view> chars;
  int64_t len = 0;
  if (obj.is_string()) {
    chars = utf8_chars(obj.as_string());
    len = static_cast<int64_t>(chars.size());
  } else if (obj.is_generator()) {
    return Value::undefined("'generator object' has no attribute 'slice'");
  } else if (obj.is_list()) {
    len = static_cast<int64_t>(obj.as_list().size());
  } else {
    return template_error(ErrorCode::kInvalidArgument, expr.line,
                          std::string("'") + obj.type_name() + "' object is not subscriptable");
  }
  int64_t step = parts[2].value_or(1);
  if (step == 0)
    return template_error(ErrorCode::kInvalidArgument, expr.line, "slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v < 0 ? *v + len : *v;
    if (step > 0) return std::clamp<int64_t>(x, 0, len);
    return std::clamp<int64_t>(x, -1, len - 1);
  };
  int64_t start = clamp(parts[0], step > 0 ? 0 : len - 1);
  int64_t stop = clamp(parts[1], step > 0 ? len : -1);
  std::string s;
  ValueList items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_string())
      s += chars[i];
    else
      items.push_back(obj.as_list()[i]);
  }
  if (obj.is_string()) return Value::string(std::move(s));
  return Value::list(std::move(items), obj.is_tuple());
}

Result<Value> Interpreter::getattr(const Value& obj, const std::string& name, int line) {
  if (obj.is_undefined()) return undefined_error(obj, line);
  if (obj.is_namespace()) {
    const Value* v = obj.as_dict().find(name);
    if (v) return *v;
    return Value::undefined("'Namespace' object has no attribute '" + name + "'");
  }
  if (auto method = bound_method(obj, name)) return *method;
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(name);
    if (v) return *v;
  }
  return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute '" +
                          name + "'");
}

Result<Value> Interpreter::getitem(const Value& obj, const Value& key, int line) {
  if (obj.is_undefined()) return undefined_error(obj, line);
  if (obj.is_dict() && key.is_string()) {
    const Value* v = obj.as_dict().find(key.as_string());
    if (v) return *v;
  }
  if (((obj.is_list() && !obj.is_generator()) || obj.is_string()) &&
      (key.is_int() || key.is_bool())) {
    int64_t idx = key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (idx < 0) idx += n;
      if (idx >= 0 && idx < n) return obj.as_list()[idx];
    } else {
      auto chars = utf8_chars(obj.as_string());
      int64_t n = static_cast<int64_t>(chars.size());
      if (idx < 0) idx += n;
      if (idx >= 0 && idx < n) return Value::string(std::string(chars[idx]));
    }
  }
  if (key.is_string()) return getattr(obj, key.as_string(), line);
  return Value::undefined(std::string("'") + obj.type_name() + " object' has no attribute '" +
                          py_str(key) + "'");
}

Result<Value> Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) return undefined_error(callee, args.line);
  if (!callee.is_callable()) {
    return template_error(ErrorCode::kInvalidArgument, args.line,
                          std::string("'") + callee.type_name() + "' object is not callable");
  }
  const Callable& fn = *callee.as_callable();
  if (fn.native) return fn.native(*this, args);
  return call_macro(fn, args);
}

Result<Value> Interpreter::call_macro(const Callable& fn, CallArgs& args) {
  const MacroDef& def = *fn.macro;
  if (args.positional.size() > def.params.size() && !def.catch_varargs) {
    return template_error(ErrorCode::kInvalidArgument, args.line,
                          "macro '" + def.name + "' takes not more than " +
                              std::to_string(def.params.size()) + " argument(s)");
  }
  auto scope = std::make_shared<Scope>();
  scope->parent = fn.closure;
  ValueDict extra_kwargs;
  for (const auto& [k, v] : args.keyword) {
    bool known = false;
    for (const auto& p : def.params) known = known || p.first == k;
    if (known) continue;
    if (!def.catch_kwargs) {
      return template_error(ErrorCode::kInvalidArgument, args.line,
                            "macro '" + def.name + "' takes no keyword argument '" + k + "'");
    }
    extra_kwargs.set(k, v);
  }
  if (def.catch_kwargs) scope->set("kwargs", Value::dict(std::move(extra_kwargs)));
  if (def.catch_varargs) {
    ValueList extra;
    for (size_t i = def.params.size(); i < args.positional.size(); ++i)
      extra.push_back(args.positional[i]);
    scope->set("varargs", Value::list(std::move(extra), true));
  }
  for (size_t i = 0; i < def.params.size(); ++i) {
    const auto& [pname, pdefault] = def.params[i];
    if (i < args.positional.size()) {
      scope->set(pname, args.positional[i]);
    } else if (const Value* kw = args.kwarg(pname)) {
      scope->set(pname, *kw);
    } else if (pdefault) {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*pdefault, scope));
      scope->set(pname, std::move(v));
    } else {
      scope->set(pname, Value::undefined("parameter '" + pname + "' was not provided"));
    }
  }
  if (++depth_ > kMaxCallDepth) {
    --depth_;
    return template_error(ErrorCode::kOutOfRange, args.line,
                          "macro recursion deeper than " + std::to_string(kMaxCallDepth));
  }
  std::string out;
  Flow flow = Flow::kNormal;
  Status st = exec_body(def.body, scope, out, flow);
  --depth_;
  STRATA_RETURN_IF_ERROR(st);
  return Value::string(std::move(out));
}

}  // namespace strata::chat::jinja
