// Jinja parser: tokens -> statement tree. Grammar and operator precedence follow jinja2 3.1's
// parser (jinja2/parser.py); a tag or syntax outside the supported subset is a kUnsupported
// error naming the construct and its template line.
#pragma once

#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"
#include "core/status.h"

namespace strata::chat::jinja {

Result<Body> parse_template(std::vector<Token> tokens);

}  // namespace strata::chat::jinja
