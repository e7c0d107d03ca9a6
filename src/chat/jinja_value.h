// Jinja values: Python's data model as chat templates see it (None, bool, int, float, str,
// list/tuple, insertion-ordered dict, namespace, callables, jinja2's default Undefined),
// with Python's str()/repr(), truthiness, equality and ordering.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace strata::chat::jinja {

class Value;
class Interpreter;

using ValueList = std::vector<Value>;

// Python dict semantics for string keys: insertion order, update in place.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

// Arguments of a call: positional, then keyword (in source order).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  int line = 0;
  const Value* kwarg(std::string_view name) const;
};

using NativeFn = std::function<Result<Value>(Interpreter&, CallArgs&)>;

struct MacroDef;  // jinja_ast.h
struct Scope;     // jinja_eval.h

// Something callable: a builtin (global function or bound method) or a template macro.
struct Callable {
  std::string name;
  NativeFn native;                  // set for builtins
  const MacroDef* macro = nullptr;  // set for macros (owned by the Template)
  std::shared_ptr<Scope> closure;   // the scope a macro was defined in
};

enum class Kind {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kDict,
  kNamespace,
  kCallable
};

class Value {
 public:
  Value() = default;  // Undefined
  static Value undefined(std::string hint, bool unsafe = false);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s);
  // markupsafe.Markup: what |safe and |escape return; `+` with a plain str escapes the str.
  static Value markup(std::string s);
  static Value list(ValueList items, bool is_tuple = false);
  // A Python generator (what select/map/unique/items/batch/reverse return): iterable once,
  // always true, no len(), not subscriptable, not JSON.
  static Value generator(ValueList items);
  static Value dict(ValueDict d = {});
  static Value make_namespace(ValueDict attrs);
  static Value callable(std::shared_ptr<Callable> fn);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && is_tuple_; }
  // Appends to a plain string in place when this value is its only holder (see exec_set).
  bool append_if_unique(std::string_view extra);
  bool same_text(const Value& other) const { return s_ && s_ == other.s_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }
  bool is_generator() const { return kind_ == Kind::kList && generator_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double as_double() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(as_int()); }
  const std::string& as_string() const { return s_ ? *s_ : empty_string(); }
  // Undefined: the jinja2-style message used when it is misused ("'x' is undefined").
  const std::string& undefined_hint() const { return as_string(); }
  bool undefined_unsafe() const { return b_; }
  const ValueList& as_list() const { return *list_; }
  // Iterating a generator empties it for every holder, as in Python.
  ValueList take_generator_items() const { return std::move(*list_); }
  const ValueDict& as_dict() const { return *dict_; }
  ValueDict& mutable_namespace() const { return *dict_; }
  const std::shared_ptr<Callable>& as_callable() const { return fn_; }

  // Python truthiness.
  bool truthy() const;
  // Python type name as jinja error messages show it: "str", "int", "dict", "NoneType" ...
  const char* type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool is_tuple_ = false;  // lists: a tuple; strings: a Markup
  bool generator_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  // Shared so that copying a value (every variable read) never copies text; templates that
  // grow a namespace string message by message stay linear in copies per step.
  std::shared_ptr<std::string> s_;
  static const std::string& empty_string();
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<Callable> fn_;
};

// markupsafe.escape of a plain string: & < > ' " as HTML entities.
std::string html_escape(std::string_view s);

// Appends str(x) to out without a temporary for strings.
void append_py_str(const Value& v, std::string& out);

// Python str(x) (what {{ x }} prints); Undefined prints as "".
std::string py_str(const Value& v);
// Python repr(x) (how a value looks inside a printed list or dict).
std::string py_repr(const Value& v);
std::string py_float_repr(double d);
std::string py_string_repr(std::string_view s);

// Python ==.
bool py_equal(const Value& a, const Value& b);
// Python <, for numbers, strings and lists; an error for other types.
Result<bool> py_less(const Value& a, const Value& b);

// json.dumps(x, ensure_ascii, indent, separators, sort_keys) as Hugging Face's tojson filter.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;  // -1: None (one line)
  bool has_indent_string = false;
  std::string indent_string;
  std::string item_separator;  // empty: Python's default for the indent
  std::string key_separator;
  bool custom_separators = false;
  bool sort_keys = false;
};
Result<std::string> json_dumps(const Value& v, const JsonDumpOptions& options);

// UTF-8 helpers: Python strings index by code point.
std::vector<std::string_view> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace strata::chat::jinja
