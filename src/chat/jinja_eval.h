// Jinja interpreter: walks the statement tree with jinja2's scoping (a fresh scope per loop
// iteration, macros closing over their defining scope, namespaces as the only mutable object)
// and jinja2's default-Undefined semantics.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"
#include "core/status.h"

namespace strata::chat::jinja {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* lookup(std::string_view name) const;
  void set(const std::string& name, Value value);
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

// "template line 12: message" as a Status.
Status template_error(ErrorCode code, int line, const std::string& message);

class Interpreter {
 public:
  explicit Interpreter(std::time_t now) : now_(now) {}
  // Breaks the reference cycles a render can build (a macro held by the scope it closes over,
  // a namespace that reaches itself), so every scope and value is freed.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Namespaces are the only mutable values; remember them to break cycles at the end.
  void track_namespace(const Value& ns) { namespaces_.push_back(ns); }

  Status exec_body(const Body& body, const ScopePtr& scope, std::string& out, Flow& flow);
  Result<Value> eval(const Expr& expr, const ScopePtr& scope);

  Result<Value> call(const Value& callee, CallArgs& args);
  // jinja2's environment.getattr / getitem (attribute first, then item; or the reverse).
  Result<Value> getattr(const Value& obj, const std::string& name, int line);
  Result<Value> getitem(const Value& obj, const Value& key, int line);
  // A for-loop's view of a value: list items, dict keys, string characters.
  Result<ValueList> iterate(const Value& v, int line);

  std::time_t now() const { return now_; }

 private:
  Status exec_stmt(const Stmt& stmt, const ScopePtr& scope, std::string& out, Flow& flow);
  Status exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_set(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Result<bool> try_append_in_place(const Stmt& stmt, const ScopePtr& scope);
  Status assign_targets(const std::vector<std::string>& targets, const Value& value, Scope& scope,
                        int line);
  Result<Value> call_macro(const Callable& fn, CallArgs& args);
  Result<Value> eval_binary(const Expr& expr, const Value& a, const Value& b);
  Result<Value> eval_compare(const Expr& expr, const ScopePtr& scope);
  Result<Value> eval_slice(const Expr& expr, const ScopePtr& scope);
  Result<CallArgs> eval_args(const Expr& expr, const ScopePtr& scope, size_t first_arg);

  std::time_t now_;
  int depth_ = 0;
  std::vector<ScopePtr> macro_scopes_;  // scopes a macro closes over
  std::vector<Value> namespaces_;
};

}  // namespace strata::chat::jinja
