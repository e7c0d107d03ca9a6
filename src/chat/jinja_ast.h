// Jinja syntax tree: expressions and statements as the parser builds them and the
// interpreter walks them. Every node keeps its template line for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace strata::chat::jinja {

enum class ExprKind {
  kLiteral,  // value
  kName,     // name
  kList,     // args: items
  kTuple,    // args: items
  kDict,     // args: key, value, key, value ...
  kGetattr,  // args[0] . name
  kGetitem,  // args[0] [ args[1] ]
  kSlice,    // args[0] [ args[1] : args[2] : args[3] ] (null parts allowed)
  kCall,     // args[0] ( args[1..] , kwargs )
  kFilter,   // args[0] | name ( args[1..] , kwargs )
  kTest,     // args[0] is [not] name ( args[1..] )
  kUnary,    // name: "-", "+", "not"; args[0]
  kBinary,   // name: operator; args[0], args[1]
  kAnd,
  kOr,
  kCompare,   // args[0] then (ops[i], args[i+1]) pairs
  kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  std::string name;
  Value value;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare
};

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (cond, body); else_body
  kFor,          // targets in expr [if cond]; body; else_body
  kSet,          // targets = expr, or target_object.attr = expr (namespace)
  kSetBlock,     // {% set name %}body{% endset %}, optional filter in expr
  kMacro,        // macro definition
  kFilterBlock,  // {% filter f %}body{% endfilter %}; expr: filter applied to a placeholder
  kBreak,
  kContinue,
  kBlock,  // a passthrough body ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  // jinja2 lets a macro take extra arguments only if its body names `varargs` / `kwargs`.
  bool catch_varargs = false;
  bool catch_kwargs = false;
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;  // kFor filter
  std::vector<std::string> targets;
  std::string attr;  // kSet on a namespace: targets[0].attr
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::unique_ptr<MacroDef> macro;
};

}  // namespace strata::chat::jinja
