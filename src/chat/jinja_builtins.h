// Jinja builtins: filters, tests, global functions and the str/dict methods chat templates
// call, each matching jinja2 3.1 (and Python) behaviour for the values templates see.
#pragma once

#include <optional>
#include <string>

#include "chat/jinja_eval.h"
#include "chat/jinja_value.h"

namespace strata::chat::jinja {

Result<Value> apply_filter(Interpreter& interp, const std::string& name, const Value& subject,
                           CallArgs& args);
Result<bool> apply_test(Interpreter& interp, const std::string& name, const Value& subject,
                        CallArgs& args);
// A bound method of a str, dict or list (`"a b".split`), or nullopt if the type has none.
std::optional<Value> bound_method(const Value& obj, const std::string& name);
// range, namespace, dict, raise_exception, strftime_now (jinja_globals.cpp).
void install_globals(Scope& scope);

}  // namespace strata::chat::jinja
