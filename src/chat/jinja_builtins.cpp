// Jinja filters (jinja2/filters.py semantics; tojson as transformers defines it). Tests and
// globals live in jinja_globals.cpp, str/dict/list methods in jinja_methods.cpp.
#include "chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "chat/jinja_strings.h"

namespace strata::chat::jinja {
namespace {

using FilterFn = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);

Status bad(const CallArgs& args, const std::string& msg) {
  return template_error(ErrorCode::kInvalidArgument, args.line, msg);
}

// Argument `idx` (positional, 0 = first after the subject) or keyword `name`.
const Value* arg(const CallArgs& args, size_t idx, std::string_view name) {
  if (idx < args.positional.size()) return &args.positional[idx];
  return args.kwarg(name);
}

bool arg_bool(const CallArgs& args, size_t idx, std::string_view name, bool def) {
  const Value* v = arg(args, idx, name);
  return v ? v->truthy() : def;
}

// ---- filters -------------------------------------------------------------------------

Result<Value> f_tojson(Interpreter&, const Value& v, CallArgs& args) {
  JsonDumpOptions o;
  o.ensure_ascii = arg_bool(args, 0, "ensure_ascii", false);
  if (const Value* indent = arg(args, 1, "indent"); indent && !indent->is_none()) {
    if (indent->is_string()) {
      o.has_indent_string = true;
      o.indent_string = indent->as_string();
    } else if (indent->is_number()) {
      o.indent = static_cast<int>(std::max<int64_t>(0, indent->as_int()));
    }
  }
  if (const Value* sep = arg(args, 2, "separators");
      sep && sep->is_list() && sep->as_list().size() == 2) {
    o.custom_separators = true;
    o.item_separator = py_str(sep->as_list()[0]);
    o.key_separator = py_str(sep->as_list()[1]);
  }
  o.sort_keys = arg_bool(args, 3, "sort_keys", false);
  Result<std::string> s = json_dumps(v, o);
  if (!s.is_ok()) return bad(args, s.status().message());
  return Value::string(std::move(s).value());
}

Result<Value> f_length(Interpreter&, const Value& v, CallArgs& args) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return Value::integer(0);
    case Kind::kString:
      return Value::integer(static_cast<int64_t>(utf8_length(v.as_string())));
    case Kind::kList:
      if (v.is_generator()) break;
      return Value::integer(static_cast<int64_t>(v.as_list().size()));
    case Kind::kDict:
      return Value::integer(static_cast<int64_t>(v.as_dict().items.size()));
    default:
      break;
  }
  return bad(args, std::string("object of type '") + v.type_name() + "' has no len()");
}

Result<Value> f_string(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() ? v : Value::string(py_str(v));  // soft_str keeps a Markup
}

Result<Value> f_trim(Interpreter&, const Value& v, CallArgs& args) {
  const Value* chars = arg(args, 0, "chars");
  return Value::string(
      py_strip(py_str(v), chars && !chars->is_none() ? &chars->as_string() : nullptr, true, true));
}

Result<Value> f_default(Interpreter&, const Value& v, CallArgs& args) {
  const Value* def = arg(args, 0, "default_value");
  bool boolean = arg_bool(args, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) return def ? *def : Value::string("");
  return v;
}

Result<Value> f_upper(Interpreter&, const Value& v, CallArgs&) {
  return Value::string(py_upper(py_str(v)));
}
Result<Value> f_lower(Interpreter&, const Value& v, CallArgs&) {
  return Value::string(py_lower(py_str(v)));
}
Result<Value> f_capitalize(Interpreter&, const Value& v, CallArgs&) {
  return Value::string(py_capitalize(py_str(v)));
}
Result<Value> f_title(Interpreter&, const Value& v, CallArgs&) {
  return Value::string(jinja_title(py_str(v)));
}
Result<Value> f_safe(Interpreter&, const Value& v, CallArgs&) { return Value::markup(py_str(v)); }

Result<Value> f_items(Interpreter&, const Value& v, CallArgs& args) {
  if (v.is_undefined()) return Value::generator({});
  if (!v.is_dict()) return bad(args, "can only get item pairs from a mapping");
  ValueList pairs;
  for (const auto& [k, val] : v.as_dict().items)
    pairs.push_back(Value::list({Value::string(k), val}, true));
  return Value::generator(std::move(pairs));
}

Result<Value> f_list(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  return Value::list(std::move(items));
}

Result<Value> f_join(Interpreter& in, const Value& v, CallArgs& args) {
  const Value* sep = arg(args, 0, "d");
  const Value* attribute = arg(args, 1, "attribute");
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i && sep) out += py_str(*sep);
    Value item = items[i];
    if (attribute) {
      STRATA_ASSIGN_OR_RETURN(item, in.getattr(item, py_str(*attribute), args.line));
    }
    out += py_str(item);
  }
  return Value::string(std::move(out));
}

Result<Value> f_first(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Result<Value> f_last(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Result<Value> f_reverse(Interpreter& in, const Value& v, CallArgs& args) {
  if (v.is_string()) {
    auto chars = utf8_chars(v.as_string());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
    return Value::string(std::move(out));
  }
  bool was_generator = v.is_generator();
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  std::reverse(items.begin(), items.end());
  // reversed() gives an iterator; a generator is not reversible, so jinja2 builds a list.
  return was_generator ? Value::list(std::move(items)) : Value::generator(std::move(items));
}

Result<Value> f_replace(Interpreter&, const Value& v, CallArgs& args) {
  const Value* old_s = arg(args, 0, "old");
  const Value* new_s = arg(args, 1, "new");
  const Value* count = arg(args, 2, "count");
  if (!old_s || !new_s) return bad(args, "replace() needs 'old' and 'new'");
  int64_t n = count && !count->is_none() ? count->as_int() : -1;
  return Value::string(py_replace(py_str(v), py_str(*old_s), py_str(*new_s), n));
}

Result<Value> f_indent(Interpreter&, const Value& v, CallArgs& args) {
  const Value* width = arg(args, 0, "width");
  std::string indention =
      width ? (width->is_string() ? width->as_string() : std::string(width->as_int(), ' '))
            : std::string(4, ' ');
  bool first = arg_bool(args, 1, "first", false);
  bool blank = arg_bool(args, 2, "blank", false);
  std::vector<std::string> lines = py_splitlines(py_str(v) + "\n");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i)
      rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
  }
  if (first) rv = indention + rv;
  return Value::string(std::move(rv));
}

Result<Value> f_int(Interpreter&, const Value& v, CallArgs& args) {
  const Value* def = arg(args, 0, "default");
  Value fallback = def ? *def : Value::integer(0);
  if (v.is_number())
    return v.is_float() ? Value::integer(static_cast<int64_t>(v.as_double()))
                        : Value::integer(v.as_int());
  if (v.is_string()) {
    if (auto i = py_parse_int(v.as_string())) return Value::integer(*i);
    if (auto f = py_parse_float(v.as_string())) return Value::integer(static_cast<int64_t>(*f));
  }
  return fallback;
}

Result<Value> f_float(Interpreter&, const Value& v, CallArgs& args) {
  const Value* def = arg(args, 0, "default");
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    if (auto f = py_parse_float(v.as_string())) return Value::floating(*f);
  }
  return def ? *def : Value::floating(0.0);
}

Result<Value> f_abs(Interpreter&, const Value& v, CallArgs& args) {
  if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
  if (v.is_number()) return Value::integer(std::llabs(v.as_int()));
  return bad(args, std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

Result<Value> f_round(Interpreter&, const Value& v, CallArgs& args) {
  const Value* precision = arg(args, 0, "precision");
  const Value* method = arg(args, 1, "method");
  if (!v.is_number()) return bad(args, "round() needs a number");
  double scale = std::pow(10.0, precision ? static_cast<double>(precision->as_int()) : 0.0);
  double x = v.as_double() * scale;
  std::string m = method ? py_str(*method) : "common";
  double r = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : std::nearbyint(x);
  return Value::floating(r / scale);
}

Result<Value> f_wordcount(Interpreter&, const Value& v, CallArgs&) {
  return Value::integer(static_cast<int64_t>(py_split(py_str(v), nullptr, -1).size()));
}

Result<Value> f_center(Interpreter&, const Value& v, CallArgs& args) {
  const Value* width = arg(args, 0, "width");
  std::string s = py_str(v);
  int64_t w = width ? width->as_int() : 80;
  int64_t len = static_cast<int64_t>(utf8_length(s));
  if (w <= len) return Value::string(s);
  int64_t total = w - len;
  int64_t left = total / 2 + (total & w & 1);
  return Value::string(std::string(left, ' ') + s + std::string(total - left, ' '));
}

Result<Value> f_escape(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_markup()) return v;
  return Value::markup(html_escape(py_str(v)));
}

// Sort key for sort/unique/dictsort: strings lowercased unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.as_string()));
  return v;
}

Status sort_values(ValueList& items, const std::vector<Value>& keys, bool reverse,
                   const CallArgs& args) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Status failure;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    Result<bool> lt = reverse ? py_less(keys[b], keys[a]) : py_less(keys[a], keys[b]);
    if (!lt.is_ok()) {
      if (failure.is_ok()) failure = lt.status();
      return false;
    }
    return *lt;
  });
  if (!failure.is_ok()) return bad(args, failure.message());
  ValueList sorted;
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
  return Status::ok();
}

Result<Value> attribute_of(Interpreter& in, const Value& item, const std::string& attribute,
                           int line) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = attribute.find('.', start);
    std::string part =
        attribute.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    STRATA_ASSIGN_OR_RETURN(cur, numeric ? in.getitem(cur, Value::integer(std::stoll(part)), line)
                                         : in.getitem(cur, Value::string(part), line));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Result<Value> f_sort(Interpreter& in, const Value& v, CallArgs& args) {
  bool reverse = arg_bool(args, 0, "reverse", false);
  bool case_sensitive = arg_bool(args, 1, "case_sensitive", false);
  const Value* attribute = arg(args, 2, "attribute");
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  std::vector<Value> keys;
  for (const auto& item : items) {
    Value k = item;
    if (attribute && !attribute->is_none()) {
      STRATA_ASSIGN_OR_RETURN(k, attribute_of(in, item, py_str(*attribute), args.line));
    }
    keys.push_back(sort_key(k, case_sensitive));
  }
  STRATA_RETURN_IF_ERROR(sort_values(items, keys, reverse, args));
  return Value::list(std::move(items));
}

Result<Value> f_dictsort(Interpreter&, const Value& v, CallArgs& args) {
  if (!v.is_dict()) return bad(args, "you can only sort by either a mapping");
  bool case_sensitive = arg_bool(args, 0, "case_sensitive", false);
  const Value* by = arg(args, 1, "by");
  bool reverse = arg_bool(args, 2, "reverse", false);
  bool by_value = by && py_str(*by) == "value";
  ValueList items;
  std::vector<Value> keys;
  for (const auto& [k, val] : v.as_dict().items) {
    items.push_back(Value::list({Value::string(k), val}, true));
    keys.push_back(sort_key(by_value ? val : Value::string(k), case_sensitive));
  }
  STRATA_RETURN_IF_ERROR(sort_values(items, keys, reverse, args));
  return Value::list(std::move(items));
}

Result<Value> f_unique(Interpreter& in, const Value& v, CallArgs& args) {
  bool case_sensitive = arg_bool(args, 0, "case_sensitive", false);
  const Value* attribute = arg(args, 1, "attribute");
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  ValueList out;
  std::vector<Value> seen;
  for (const auto& item : items) {
    Value k = item;
    if (attribute && !attribute->is_none()) {
      STRATA_ASSIGN_OR_RETURN(k, attribute_of(in, item, py_str(*attribute), args.line));
    }
    k = sort_key(k, case_sensitive);
    bool dup = false;
    for (const auto& s : seen) dup = dup || py_equal(s, k);
    if (dup) continue;
    seen.push_back(k);
    out.push_back(item);
  }
  return Value::generator(std::move(out));
}

// select/reject/selectattr/rejectattr: jinja2's select_or_reject.
Result<Value> select_or_reject(Interpreter& in, const Value& v, CallArgs& args, bool by_attr,
                               bool select) {
  if (!v.truthy()) return Value::generator({});  // jinja2 guards with `if value:`
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  size_t next = 0;
  std::string attribute;
  if (by_attr) {
    if (args.positional.empty()) return bad(args, "missing parameter for attribute name");
    attribute = py_str(args.positional[next++]);
  }
  std::string test;
  if (next < args.positional.size()) test = py_str(args.positional[next++]);
  CallArgs test_args;
  test_args.line = args.line;
  test_args.positional.assign(args.positional.begin() + next, args.positional.end());
  test_args.keyword = args.keyword;
  ValueList out;
  for (const auto& item : items) {
    Value subject = item;
    if (by_attr) {
      STRATA_ASSIGN_OR_RETURN(subject, attribute_of(in, item, attribute, args.line));
    }
    bool pass = subject.truthy();
    if (!test.empty()) {
      STRATA_ASSIGN_OR_RETURN(pass, apply_test(in, test, subject, test_args));
    }
    if (pass == select) out.push_back(item);
  }
  return Value::generator(std::move(out));
}
Result<Value> f_select(Interpreter& in, const Value& v, CallArgs& a) {
  return select_or_reject(in, v, a, false, true);
}
Result<Value> f_reject(Interpreter& in, const Value& v, CallArgs& a) {
  return select_or_reject(in, v, a, false, false);
}
Result<Value> f_selectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_or_reject(in, v, a, true, true);
}
Result<Value> f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_or_reject(in, v, a, true, false);
}

Result<Value> f_map(Interpreter& in, const Value& v, CallArgs& args) {
  if (!v.truthy()) return Value::generator({});  // jinja2 guards with `if value:`
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  ValueList out;
  if (const Value* attribute = args.kwarg("attribute")) {
    const Value* def = args.kwarg("default");
    for (const auto& item : items) {
      STRATA_ASSIGN_OR_RETURN(Value x, attribute_of(in, item, py_str(*attribute), args.line));
      out.push_back(x.is_undefined() && def ? *def : x);
    }
    return Value::generator(std::move(out));
  }
  if (args.positional.empty()) return bad(args, "map() needs a filter name or attribute=");
  std::string filter = py_str(args.positional[0]);
  CallArgs filter_args;
  filter_args.line = args.line;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const auto& item : items) {
    STRATA_ASSIGN_OR_RETURN(Value x, apply_filter(in, filter, item, filter_args));
    out.push_back(std::move(x));
  }
  return Value::generator(std::move(out));
}

Result<Value> f_batch(Interpreter& in, const Value& v, CallArgs& args) {
  const Value* n = arg(args, 0, "linecount");
  const Value* fill = arg(args, 1, "fill_with");
  if (!n || n->as_int() <= 0) return bad(args, "batch() needs a positive size");
  STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(v, args.line));
  ValueList out;
  ValueList cur;
  for (const auto& item : items) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n->as_int()) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    while (fill && !fill->is_none() && static_cast<int64_t>(cur.size()) < n->as_int())
      cur.push_back(*fill);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::generator(std::move(out));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> kFilters = {
      {"tojson", f_tojson},
      {"length", f_length},
      {"count", f_length},
      {"string", f_string},
      {"trim", f_trim},
      {"default", f_default},
      {"d", f_default},
      {"upper", f_upper},
      {"lower", f_lower},
      {"capitalize", f_capitalize},
      {"title", f_title},
      {"safe", f_safe},
      {"items", f_items},
      {"list", f_list},
      {"join", f_join},
      {"first", f_first},
      {"last", f_last},
      {"reverse", f_reverse},
      {"replace", f_replace},
      {"indent", f_indent},
      {"int", f_int},
      {"float", f_float},
      {"abs", f_abs},
      {"round", f_round},
      {"wordcount", f_wordcount},
      {"center", f_center},
      {"escape", f_escape},
      {"e", f_escape},
      {"sort", f_sort},
      {"dictsort", f_dictsort},
      {"unique", f_unique},
      {"select", f_select},
      {"reject", f_reject},
      {"selectattr", f_selectattr},
      {"rejectattr", f_rejectattr},
      {"map", f_map},
      {"batch", f_batch},
  };
  return kFilters;
}

}  // namespace

Result<Value> apply_filter(Interpreter& interp, const std::string& name, const Value& subject,
                           CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) {
    return template_error(ErrorCode::kUnsupported, args.line, "unsupported filter '" + name + "'");
  }
  return it->second(interp, subject, args);
}

}  // namespace strata::chat::jinja
