// Methods of str, dict and list values as templates call them ("a,b".split(","),
// message.get("content")). Mutating methods are refused as jinja2's
// ImmutableSandboxedEnvironment refuses them: calling one is an error.
#include <algorithm>

#include "chat/jinja_builtins.h"
#include "chat/jinja_strings.h"

namespace strata::chat::jinja {
namespace {

Status bad(const CallArgs& args, const std::string& msg) {
  return template_error(ErrorCode::kInvalidArgument, args.line, msg);
}

const Value* arg(const CallArgs& args, size_t idx, std::string_view name) {
  if (idx < args.positional.size()) return &args.positional[idx];
  return args.kwarg(name);
}

Value make_method(const std::string& name, NativeFn fn) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->native = std::move(fn);
  return Value::callable(std::move(c));
}

Value string_list(std::vector<std::string> parts) {
  ValueList items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return Value::list(std::move(items));
}

// Optional string argument (None counts as absent), or an error for another type.
Result<std::optional<std::string>> opt_string(const CallArgs& args, size_t idx,
                                              std::string_view name) {
  const Value* v = arg(args, idx, name);
  if (!v || v->is_none()) return std::optional<std::string>{};
  if (!v->is_string())
    return bad(args, std::string("expected a string argument, got ") + v->type_name());
  return std::optional<std::string>{v->as_string()};
}

int64_t cp_index(const std::string& s, size_t byte_pos) {
  return static_cast<int64_t>(utf8_length(s.substr(0, byte_pos)));
}

std::optional<Value> string_method(const Value& obj, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool left = name != "rstrip", right = name != "lstrip";
    return make_method(name, [v = obj, left, right](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      STRATA_ASSIGN_OR_RETURN(auto chars, opt_string(a, 0, "chars"));
      return Value::string(py_strip(s, chars ? &*chars : nullptr, left, right));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool reverse = name == "rsplit";
    return make_method(name, [v = obj, reverse](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      STRATA_ASSIGN_OR_RETURN(auto sep, opt_string(a, 0, "sep"));
      if (sep && sep->empty()) return bad(a, "empty separator");
      const Value* m = arg(a, 1, "maxsplit");
      int64_t maxsplit = m ? m->as_int() : -1;
      const std::string* sp = sep ? &*sep : nullptr;
      return string_list(reverse ? py_rsplit(s, sp, maxsplit) : py_split(s, sp, maxsplit));
    });
  }
  if (name == "splitlines") {
    return make_method(name, [v = obj](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      const Value* keep = arg(a, 0, "keepends");
      return string_list(py_splitlines(s, keep && keep->truthy()));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool starts = name == "startswith";
    return make_method(name, [v = obj, starts](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      const Value* p = arg(a, 0, "prefix");
      if (!p) return bad(a, "startswith/endswith need an argument");
      std::vector<std::string> options;
      if (p->is_string())
        options.push_back(p->as_string());
      else if (p->is_list()) {
        for (const auto& x : p->as_list()) {
          if (!x.is_string()) return bad(a, "tuple for startswith/endswith must only contain str");
          options.push_back(x.as_string());
        }
      } else {
        return bad(a, "startswith/endswith first arg must be str or a tuple of str");
      }
      if (arg(a, 1, "start"))
        return template_error(ErrorCode::kUnsupported, a.line,
                              "start/end arguments of startswith/endswith are not supported");
      for (const auto& o : options) {
        if (starts ? s.rfind(o, 0) == 0
                   : (s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0))
          return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  }
  if (name == "replace") {
    return make_method(name, [v = obj](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      const Value* o = arg(a, 0, "old");
      const Value* n = arg(a, 1, "new");
      const Value* c = arg(a, 2, "count");
      if (!o || !n || !o->is_string() || !n->is_string())
        return bad(a, "replace() needs two strings");
      return Value::string(py_replace(s, o->as_string(), n->as_string(), c ? c->as_int() : -1));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" ||
      name == "casefold") {
    return make_method(name, [v = obj, name](Interpreter&, CallArgs&) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      if (name == "upper") return Value::string(py_upper(s));
      if (name == "title") return Value::string(py_title(s));
      if (name == "capitalize") return Value::string(py_capitalize(s));
      return Value::string(py_lower(s));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return make_method(name, [v = obj, name](Interpreter&, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      const Value* sub = arg(a, 0, "sub");
      if (!sub || !sub->is_string()) return bad(a, name + "() needs a string");
      if (a.positional.size() > 1)
        return template_error(ErrorCode::kUnsupported, a.line,
                              "start/end arguments of str." + name + " are not supported");
      const std::string& t = sub->as_string();
      if (name == "count") {
        if (t.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
        int64_t n = 0;
        for (size_t at = s.find(t); at != std::string::npos; at = s.find(t, at + t.size())) ++n;
        return Value::integer(n);
      }
      size_t at = (name == "find" || name == "index") ? s.find(t) : s.rfind(t);
      if (at == std::string::npos) {
        if (name == "index" || name == "rindex") return bad(a, "substring not found");
        return Value::integer(-1);
      }
      return Value::integer(cp_index(s, at));
    });
  }
  if (name == "join") {
    return make_method(name, [v = obj](Interpreter& in, CallArgs& a) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      if (a.positional.empty()) return bad(a, "join() needs an iterable");
      STRATA_ASSIGN_OR_RETURN(ValueList items, in.iterate(a.positional[0], a.line));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) return bad(a, "sequence item: expected str instance");
        if (i) out += s;
        out += items[i].as_string();
      }
      return Value::string(std::move(out));
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
    return make_method(name, [v = obj, name](Interpreter&, CallArgs&) -> Result<Value> {
      const std::string& s = v.as_string();  // shared, not copied
      if (s.empty()) return Value::boolean(false);
      bool ok = true;
      for (unsigned char c : s) {
        if (name == "isdigit")
          ok = ok && std::isdigit(c);
        else if (name == "isalpha")
          ok = ok && std::isalpha(c);
        else if (name == "isalnum")
          ok = ok && std::isalnum(c);
        else
          ok = ok && py_isspace(c);
      }
      return Value::boolean(ok);
    });
  }
  if (name == "format" || name == "format_map") {
    return make_method(name, [name](Interpreter&, CallArgs& a) -> Result<Value> {
      return template_error(ErrorCode::kUnsupported, a.line, "str." + name + "() is not supported");
    });
  }
  return std::nullopt;
}

std::optional<Value> dict_method(const Value& d, const std::string& name) {
  if (name == "get") {
    return make_method(name, [d](Interpreter&, CallArgs& a) -> Result<Value> {
      const Value* key = arg(a, 0, "key");
      if (!key) return bad(a, "get() needs a key");
      const Value* def = arg(a, 1, "default");
      const Value* v = key->is_string() ? d.as_dict().find(key->as_string()) : nullptr;
      if (v) return *v;
      return def ? *def : Value::none();
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    return make_method(name, [d, name](Interpreter&, CallArgs&) -> Result<Value> {
      ValueList out;
      for (const auto& [k, v] : d.as_dict().items) {
        if (name == "items")
          out.push_back(Value::list({Value::string(k), v}, true));
        else
          out.push_back(name == "keys" ? Value::string(k) : v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "copy") {
    return make_method(
        name, [d](Interpreter&, CallArgs&) -> Result<Value> { return Value::dict(d.as_dict()); });
  }
  static const char* kMutating[] = {"pop", "popitem", "update", "setdefault", "clear"};
  for (const char* m : kMutating) {
    if (name == m)
      return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.",
                              true);
  }
  return std::nullopt;
}

std::optional<Value> list_method(const Value& l, const std::string& name) {
  if (name == "index" || name == "count") {
    return make_method(name, [l, name](Interpreter&, CallArgs& a) -> Result<Value> {
      if (a.positional.empty()) return bad(a, name + "() needs an argument");
      int64_t n = 0;
      const auto& items = l.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (!py_equal(items[i], a.positional[0])) continue;
        if (name == "index") return Value::integer(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") return bad(a, "value is not in list");
      return Value::integer(n);
    });
  }
  static const char* kMutating[] = {"append", "pop",   "extend", "insert",
                                    "remove", "clear", "sort",   "reverse"};
  for (const char* m : kMutating) {
    if (name == m) {
      return Value::undefined(std::string("access to attribute '") + name + "' of '" +
                                  l.type_name() + "' object is unsafe.",
                              true);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj, name);
  if (obj.is_dict()) return dict_method(obj, name);
  if (obj.is_list()) return list_method(obj, name);
  return std::nullopt;
}

}  // namespace strata::chat::jinja
