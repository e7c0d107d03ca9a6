// Jinja tests, the `is` predicates (jinja2/tests.py semantics), and global functions (range,
// namespace, dict, raise_exception, strftime_now), as Hugging Face's environment provides them.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "chat/jinja_builtins.h"
#include "chat/jinja_strings.h"

namespace strata::chat::jinja {
namespace {

using TestFn = Result<bool> (*)(Interpreter&, const Value&, CallArgs&);

Status bad(const CallArgs& args, const std::string& msg) {
  return template_error(ErrorCode::kInvalidArgument, args.line, msg);
}

// Argument `idx` (positional, 0 = first after the subject) or keyword `name`.
const Value* arg(const CallArgs& args, size_t idx, std::string_view name) {
  if (idx < args.positional.size()) return &args.positional[idx];
  return args.kwarg(name);
}

// ---- tests ---------------------------------------------------------------------------

Result<bool> t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
Result<bool> t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
Result<bool> t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
Result<bool> t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
Result<bool> t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
Result<bool> t_iterable(Interpreter&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
Result<bool> t_sequence(Interpreter&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || (v.is_list() && !v.is_generator()) || v.is_dict();
}
Result<bool> t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
Result<bool> t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
Result<bool> t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
Result<bool> t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
Result<bool> t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
Result<bool> t_false(Interpreter&, const Value& v, CallArgs&) {
  return v.is_bool() && !v.as_bool();
}
Result<bool> t_callable(Interpreter&, const Value& v, CallArgs&) { return v.is_callable(); }
Result<bool> t_odd(Interpreter&, const Value& v, CallArgs& a) {
  if (!v.is_number()) return bad(a, "odd test needs a number");
  return (v.as_int() % 2) != 0;
}
Result<bool> t_even(Interpreter&, const Value& v, CallArgs& a) {
  if (!v.is_number()) return bad(a, "even test needs a number");
  return (v.as_int() % 2) == 0;
}
Result<bool> t_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  const Value* n = arg(a, 0, "num");
  if (!n || !v.is_number() || n->as_int() == 0)
    return bad(a, "divisibleby needs a non-zero number");
  return v.as_int() % n->as_int() == 0;
}
Result<bool> t_eq(Interpreter&, const Value& v, CallArgs& a) {
  const Value* o = arg(a, 0, "other");
  return o && py_equal(v, *o);
}
Result<bool> t_ne(Interpreter&, const Value& v, CallArgs& a) {
  const Value* o = arg(a, 0, "other");
  return !(o && py_equal(v, *o));
}
Result<bool> compare_test(const Value& v, CallArgs& a, bool want_less, bool or_equal) {
  const Value* o = arg(a, 0, "other");
  if (!o) return bad(a, "comparison test needs an argument");
  if (or_equal && py_equal(v, *o)) return true;
  Result<bool> r = want_less ? py_less(v, *o) : py_less(*o, v);
  if (!r.is_ok()) return bad(a, r.status().message());
  return *r;
}
Result<bool> t_lt(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test(v, a, true, false);
}
Result<bool> t_le(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test(v, a, true, true);
}
Result<bool> t_gt(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test(v, a, false, false);
}
Result<bool> t_ge(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test(v, a, false, true);
}
Result<bool> t_in(Interpreter&, const Value& v, CallArgs& a) {
  const Value* seq = arg(a, 0, "seq");
  if (!seq) return bad(a, "in test needs a sequence");
  if (seq->is_string())
    return v.is_string() && seq->as_string().find(v.as_string()) != std::string::npos;
  if (seq->is_dict()) return v.is_string() && seq->as_dict().find(v.as_string()) != nullptr;
  if (seq->is_list()) {
    for (const auto& item : seq->as_list()) {
      if (py_equal(item, v)) return true;
    }
    return false;
  }
  return bad(a, "in test needs a sequence");
}
Result<bool> t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value* o = arg(a, 0, "other");
  if (!o) return false;
  if ((v.is_none() && o->is_none()) || (v.is_bool() && o->is_bool() && v.as_bool() == o->as_bool()))
    return true;
  return false;
}
Result<bool> t_lower(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() && py_lower(v.as_string()) == v.as_string();
}
Result<bool> t_upper(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() && py_upper(v.as_string()) == v.as_string();
}

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> kTests = {
      {"defined", t_defined},
      {"undefined", t_undefined},
      {"none", t_none},
      {"string", t_string},
      {"mapping", t_mapping},
      {"iterable", t_iterable},
      {"sequence", t_sequence},
      {"number", t_number},
      {"integer", t_integer},
      {"float", t_float},
      {"boolean", t_boolean},
      {"true", t_true},
      {"false", t_false},
      {"callable", t_callable},
      {"odd", t_odd},
      {"even", t_even},
      {"divisibleby", t_divisibleby},
      {"eq", t_eq},
      {"equalto", t_eq},
      {"==", t_eq},
      {"ne", t_ne},
      {"!=", t_ne},
      {"lt", t_lt},
      {"lessthan", t_lt},
      {"<", t_lt},
      {"le", t_le},
      {"<=", t_le},
      {"gt", t_gt},
      {"greaterthan", t_gt},
      {">", t_gt},
      {"ge", t_ge},
      {">=", t_ge},
      {"in", t_in},
      {"sameas", t_sameas},
      {"lower", t_lower},
      {"upper", t_upper},
  };
  return kTests;
}

// ---- globals -------------------------------------------------------------------------

Value native(std::string name, NativeFn fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->native = std::move(fn);
  return Value::callable(std::move(c));
}

Result<Value> g_range(Interpreter&, CallArgs& args) {
  int64_t start = 0, stop = 0, step = 1;
  const auto& p = args.positional;
  for (const auto& v : p) {
    if (!v.is_int() && !v.is_bool()) return bad(args, "range() arguments must be integers");
  }
  if (p.size() == 1)
    stop = p[0].as_int();
  else if (p.size() >= 2) {
    start = p[0].as_int();
    stop = p[1].as_int();
    if (p.size() >= 3) step = p[2].as_int();
  } else {
    return bad(args, "range expected at least 1 argument");
  }
  if (step == 0) return bad(args, "range() arg 3 must not be zero");
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 100000) return bad(args, "range too big");  // jinja2 sandbox MAX_RANGE
    out.push_back(Value::integer(i));
  }
  return Value::list(std::move(out));
}

Result<Value> g_namespace(Interpreter& in, CallArgs& args) {
  ValueDict attrs;
  for (const auto& p : args.positional) {
    if (!p.is_dict()) return bad(args, "namespace() positional argument must be a mapping");
    for (const auto& [k, v] : p.as_dict().items) attrs.set(k, v);
  }
  for (const auto& [k, v] : args.keyword) attrs.set(k, v);
  Value ns = Value::make_namespace(std::move(attrs));
  in.track_namespace(ns);
  return ns;
}

Result<Value> g_dict(Interpreter&, CallArgs& args) {
  ValueDict d;
  for (const auto& p : args.positional) {
    if (!p.is_dict()) return bad(args, "dict() positional argument must be a mapping");
    for (const auto& [k, v] : p.as_dict().items) d.set(k, v);
  }
  for (const auto& [k, v] : args.keyword) d.set(k, v);
  return Value::dict(std::move(d));
}

Result<Value> g_raise_exception(Interpreter&, CallArgs& args) {
  std::string msg = args.positional.empty() ? "" : py_str(args.positional[0]);
  return template_error(ErrorCode::kInvalidArgument, args.line,
                        "the template raised an error: " + msg);
}

Result<Value> g_strftime_now(Interpreter& in, CallArgs& args) {
  if (args.positional.empty()) return bad(args, "strftime_now() needs a format");
  std::time_t now = in.now();
  std::tm tm_now{};
  localtime_r(&now, &tm_now);
  char buf[512];
  size_t n = std::strftime(buf, sizeof(buf), py_str(args.positional[0]).c_str(), &tm_now);
  return Value::string(std::string(buf, n));
}

}  // namespace

Result<bool> apply_test(Interpreter& interp, const std::string& name, const Value& subject,
                        CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) {
    return template_error(ErrorCode::kUnsupported, args.line, "unsupported test '" + name + "'");
  }
  return it->second(interp, subject, args);
}

void install_globals(Scope& scope) {
  scope.set("range", native("range", g_range));
  scope.set("namespace", native("namespace", g_namespace));
  scope.set("dict", native("dict", g_dict));
  scope.set("raise_exception", native("raise_exception", g_raise_exception));
  scope.set("strftime_now", native("strftime_now", g_strftime_now));
  // jinja2's other default globals: named, so using one is a clear kUnsupported error.
  for (const char* name : {"lipsum", "cycler", "joiner"}) {
    std::string n = name;
    scope.set(n, native(n, [n](Interpreter&, CallArgs& args) -> Result<Value> {
                return template_error(ErrorCode::kUnsupported, args.line,
                                      "the global function '" + n + "' is not supported");
              }));
  }
}

}  // namespace strata::chat::jinja
