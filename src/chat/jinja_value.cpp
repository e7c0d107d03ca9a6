// Jinja values: constructors, Python str()/repr(), equality, ordering and json.dumps.
#include "chat/jinja_value.h"
#include "core/utf8.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace strata::chat::jinja {

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Value::undefined(std::string hint, bool unsafe) {
  Value v;
  v.s_ = std::make_shared<std::string>(std::move(hint));
  v.b_ = unsafe;
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::floating(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<std::string>(std::move(s));
  return v;
}
Value Value::markup(std::string s) {
  Value v = string(std::move(s));
  v.is_tuple_ = true;
  return v;
}
Value Value::list(ValueList items, bool is_tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.is_tuple_ = is_tuple;
  v.list_ = std::make_shared<ValueList>(std::move(items));
  return v;
}
Value Value::generator(ValueList items) {
  Value v = list(std::move(items));
  v.generator_ = true;
  return v;
}
Value Value::dict(ValueDict d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::make_shared<ValueDict>(std::move(d));
  return v;
}
Value Value::make_namespace(ValueDict attrs) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.dict_ = std::make_shared<ValueDict>(std::move(attrs));
  return v;
}
Value Value::callable(std::shared_ptr<Callable> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::move(fn);
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return integer(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float:
      return floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      ValueDict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(it.key(), from_json(it.value()));
      return dict(std::move(d));
    }
    default:
      return none();
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0.0;
    case Kind::kString:
      return !as_string().empty();
    case Kind::kList:
      return generator_ || !list_->empty();
    case Kind::kDict:
      return !dict_->items.empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return generator_ ? "generator" : is_tuple_ ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // "-1.2345e+02": shortest round-trip digits
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  std::string out = negative ? "-" : "";
  if (exponent >= -5 && exponent < 16) {  // Python's repr switches to exponent outside this
    int decpt = exponent + 1;
    if (decpt <= 0) {
      out += "0." + std::string(-decpt, '0') + digits;
    } else if (decpt >= static_cast<int>(digits.size())) {
      out += digits + std::string(decpt - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp_buf;
}

namespace {

// One code point at s[i] (core/utf8.h); advances i.
uint32_t decode_utf8(std::string_view s, size_t& i) { return decode_utf8_lenient(s, i); }

// Python's str.isprintable for the code points chat data is likely to hold.
bool py_printable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7f) return false;
  if (cp >= 0x80 && cp <= 0xa0) return false;
  if (cp == 0xad || cp == 0x1680 || cp == 0x3000 || cp == 0xfeff) return false;
  if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
      (cp >= 0x205f && cp <= 0x206f))
    return false;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return true;
}

void append_hex(std::string& out, const char* prefix, uint32_t cp, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s%0*x", prefix, width, cp);
  out += buf;
}

void repr_into(const Value& v, std::string& out);

void repr_list_into(const ValueList& items, bool tuple, std::string& out) {
  out += tuple ? "(" : "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_into(items[i], out);
  }
  if (tuple && items.size() == 1) out += ",";
  out += tuple ? ")" : "]";
}

void repr_dict_into(const ValueDict& d, std::string& out) {
  out += "{";
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    out += py_string_repr(d.items[i].first);
    out += ": ";
    repr_into(d.items[i].second, out);
  }
  out += "}";
}

void repr_into(const Value& v, std::string& out) {
  if (v.is_generator()) {
    out += "<generator object>";
    return;
  }
  switch (v.kind()) {
    case Kind::kString:
      out += py_string_repr(v.as_string());
      return;
    case Kind::kList:
      repr_list_into(v.as_list(), v.is_tuple(), out);
      return;
    case Kind::kDict:
      repr_dict_into(v.as_dict(), out);
      return;
    case Kind::kUndefined:
      out += "Undefined";
      return;
    case Kind::kNamespace:
      out += "<Namespace ";
      repr_dict_into(v.as_dict(), out);
      out += ">";
      return;
    default:
      out += py_str(v);
  }
}

}  // namespace

std::string py_string_repr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = decode_utf8(s, i);
    if (cp == '\\')
      out += "\\\\";
    else if (cp == static_cast<uint32_t>(quote))
      out += std::string("\\") + quote;
    else if (cp == '\n')
      out += "\\n";
    else if (cp == '\r')
      out += "\\r";
    else if (cp == '\t')
      out += "\\t";
    else if (py_printable(cp))
      out.append(s.substr(start, i - start));
    else if (cp < 0x100)
      append_hex(out, "\\x", cp, 2);
    else if (cp < 0x10000)
      append_hex(out, "\\u", cp, 4);
    else
      append_hex(out, "\\U", cp, 8);
  }
  out += quote;
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool Value::append_if_unique(std::string_view extra) {
  if (kind_ != Kind::kString || is_tuple_ || !s_ || s_.use_count() != 1) return false;
  s_->append(extra);
  return true;
}

const std::string& Value::empty_string() {
  static const std::string kEmpty;
  return kEmpty;
}

void append_py_str(const Value& v, std::string& out) {
  if (v.is_string()) {
    out += v.as_string();
  } else if (!v.is_undefined()) {
    out += py_str(v);
  }
}

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.as_int());
    case Kind::kFloat:
      return py_float_repr(v.as_double());
    case Kind::kString:
      return v.as_string();
    case Kind::kCallable:
      return "<function " + v.as_callable()->name + ">";
    default: {
      std::string out;
      repr_into(v, out);
      return out;
    }
  }
}

std::string py_repr(const Value& v) {
  std::string out;
  repr_into(v, out);
  return out;
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      if (a.is_generator() || b.is_generator()) return &a.as_list() == &b.as_list();
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!py_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !py_equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
      return &a.mutable_namespace() == &b.mutable_namespace();
    case Kind::kCallable:
      return a.as_callable() == b.as_callable();
    default:
      return false;
  }
}

Result<bool> py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string())
    return a.as_string() < b.as_string();  // UTF-8 keeps code point order
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.is_generator() &&
      !b.is_generator()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i])) continue;
      return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return error(ErrorCode::kInvalidArgument,
               std::string("'<' not supported between instances of '") + a.type_name() + "' and '" +
                   b.type_name() + "'");
}

namespace {

void json_string_into(std::string_view s, bool ensure_ascii, std::string& out) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = decode_utf8(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7f)) {
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        append_hex(out, "\\u", 0xd800 + (v >> 10), 4);
        append_hex(out, "\\u", 0xdc00 + (v & 0x3ff), 4);
      } else {
        append_hex(out, "\\u", cp, 4);
      }
      continue;
    }
    out.append(s.substr(start, i - start));
  }
  out += '"';
}

struct JsonWriter {
  const JsonDumpOptions& options;
  std::string indent_unit;
  bool indented;
  std::string item_sep;
  std::string key_sep;
  std::string out;

  Status write(const Value& v, int depth) {
    switch (v.kind()) {
      case Kind::kNone:
        out += "null";
        return Status::ok();
      case Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return Status::ok();
      case Kind::kInt:
        out += std::to_string(v.as_int());
        return Status::ok();
      case Kind::kFloat: {
        double d = v.as_double();
        if (std::isnan(d))
          out += "NaN";
        else if (std::isinf(d))
          out += d > 0 ? "Infinity" : "-Infinity";
        else
          out += py_float_repr(d);
        return Status::ok();
      }
      case Kind::kString:
        json_string_into(v.as_string(), options.ensure_ascii, out);
        return Status::ok();
      case Kind::kList:
        if (v.is_generator()) break;
        return write_list(v.as_list(), depth);
      case Kind::kDict:
        return write_dict(v.as_dict(), depth);
      default:
        break;
    }
    return error(ErrorCode::kInvalidArgument,
                 std::string("Object of type ") + v.type_name() + " is not JSON serializable");
  }

  void newline(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) out += indent_unit;
  }

  Status write_list(const ValueList& items, int depth) {
    if (items.empty()) {
      out += "[]";
      return Status::ok();
    }
    out += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep;
      if (indented) newline(depth + 1);
      STRATA_RETURN_IF_ERROR(write(items[i], depth + 1));
    }
    if (indented) newline(depth);
    out += ']';
    return Status::ok();
  }

  Status write_dict(const ValueDict& d, int depth) {
    if (d.items.empty()) {
      out += "{}";
      return Status::ok();
    }
    std::vector<const std::pair<std::string, Value>*> order;
    for (const auto& kv : d.items) order.push_back(&kv);
    if (options.sort_keys) {
      std::stable_sort(order.begin(), order.end(),
                       [](auto* a, auto* b) { return a->first < b->first; });
    }
    out += '{';
    for (size_t i = 0; i < order.size(); ++i) {
      if (i) out += item_sep;
      if (indented) newline(depth + 1);
      json_string_into(order[i]->first, options.ensure_ascii, out);
      out += key_sep;
      STRATA_RETURN_IF_ERROR(write(order[i]->second, depth + 1));
    }
    if (indented) newline(depth);
    out += '}';
    return Status::ok();
  }
};

}  // namespace

Result<std::string> json_dumps(const Value& v, const JsonDumpOptions& options) {
  JsonWriter w{options, "", false, "", "", ""};
  if (options.has_indent_string) {
    w.indented = true;
    w.indent_unit = options.indent_string;
  } else if (options.indent >= 0) {
    w.indented = true;
    w.indent_unit = std::string(options.indent, ' ');
  }
  w.item_sep = w.indented ? "," : ", ";
  w.key_sep = ": ";
  if (options.custom_separators) {
    w.item_sep = options.item_separator;
    w.key_sep = options.key_separator;
  }
  STRATA_RETURN_IF_ERROR(w.write(v, 0));
  return std::move(w.out);
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> chars;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    decode_utf8(s, i);
    chars.push_back(s.substr(start, i - start));
  }
  return chars;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xc0) != 0x80) ++n;
  }
  return n;
}

}  // namespace strata::chat::jinja
