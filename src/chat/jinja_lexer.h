// Jinja lexer: template source -> tokens, applying jinja2's whitespace rules exactly as
// Hugging Face configures them (trim_blocks, lstrip_blocks, '-'/'+' markers, no trailing newline).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata::chat::jinja {

enum class TokenType {
  kData,        // literal template text (already whitespace-controlled)
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kVarBegin,    // {{
  kVarEnd,      // }}
  kName,
  kString,  // text holds the unescaped value
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

Result<std::vector<Token>> tokenize(std::string_view source, const LexOptions& options = {});

}  // namespace strata::chat::jinja
