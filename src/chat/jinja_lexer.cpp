// Jinja lexer. Whitespace rules follow jinja2 3.1's lexer (jinja2/lexer.py, tokeniter):
// '-' strips all whitespace on that side; lstrip_blocks removes spaces/tabs before a block or
// comment tag that starts its line; trim_blocks drops one newline after a block or comment.
#include "chat/jinja_lexer.h"
#include "core/utf8.h"

#include <cctype>
#include <cstdint>

#include "chat/jinja_strings.h"

namespace strata::chat::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

using strata::append_utf8;

// Python's "unicode-escape" decoding of a string literal body (what jinja2 applies).
std::string unescape(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    auto hex = [&](int n) -> int64_t {
      uint32_t v = 0;
      for (int k = 1; k <= n; ++k) {
        if (i + k >= body.size() || !std::isxdigit(static_cast<unsigned char>(body[i + k])))
          return -1;
        char h = body[i + k];
        v = v * 16 +
            (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      i += n;
      return v;
    };
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case '\n':
        break;  // line continuation
      case 'x':
      case 'u':
      case 'U': {
        int64_t v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
        if (v < 0) {
          out += '\\';
          out += e;
        } else {
          append_utf8(out, static_cast<uint32_t>(v));
        }
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t v = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7';
               ++k) {
            v = v * 8 + (body[++i] - '0');
          }
          append_utf8(out, v);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options)
      : src_(std::move(source)), options_(options) {}

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      std::string data = src_.substr(pos_, (tag == std::string::npos ? src_.size() : tag) - pos_);
      if (tag == std::string::npos) {
        emit_data(std::move(data));
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
      int data_newlines = count_newlines(data);
      if (sign == '-') {
        data = py_strip(data, nullptr, false, true);  // Python's str.rstrip()
      } else if (sign != '+' && options_.lstrip_blocks && kind != '{') {
        size_t l_pos = data.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < data.size() &&
            py_strip(std::string_view(data).substr(l_pos), nullptr, true, false).empty()) {
          data.resize(l_pos);  // only whitespace between the line start and the tag
        }
      }
      emit_data(std::move(data));
      line_ += data_newlines;
      pos_ = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      Status st = kind == '#' ? lex_comment() : lex_tag(kind);
      if (!st.is_ok()) return st;
    }
    tokens_.push_back(Token{TokenType::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  static int count_newlines(std::string_view s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
  }

  void emit_data(std::string data) {
    if (!data.empty()) tokens_.push_back(Token{TokenType::kData, std::move(data), line_});
  }

  // After a tag's closing delimiter: '-' eats all whitespace, trim_blocks one newline.
  void after_tag_end(char sign, bool block_like) {
    if (sign == '-') {  // jinja2's "-%}\s*": Unicode whitespace, as Python's re sees it
      size_t skipped = py_space_prefix(std::string_view(src_).substr(pos_));
      line_ += count_newlines(std::string_view(src_).substr(pos_, skipped));
      pos_ += skipped;
    } else if (sign != '+' && block_like && options_.trim_blocks && pos_ < src_.size() &&
               src_[pos_] == '\n') {
      ++line_;
      ++pos_;
    }
  }

  Status lex_comment() {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) {
      return error(ErrorCode::kInvalidArgument,
                   "template line " + std::to_string(line_) + ": unclosed comment");
    }
    char sign = end > pos_ ? src_[end - 1] : '\0';
    line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
    pos_ = end + 2;
    after_tag_end(sign, true);
    return Status::ok();
  }

  Status fail(const std::string& what) const {
    return error(ErrorCode::kInvalidArgument,
                 "template line " + std::to_string(line_) + ": " + what);
  }

  Status lex_tag(char kind) {
    bool block = kind == '%';
    tokens_.push_back(Token{block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", line_});
    int depth = 0;
    const char close = block ? '%' : '}';
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        line_ += src_[pos_] == '\n';
        ++pos_;
      }
      if (pos_ >= src_.size()) return fail(block ? "unclosed '{%' tag" : "unclosed '{{' tag");
      char c = src_[pos_];
      if (depth == 0) {
        char sign = '\0';
        size_t at = pos_;
        if ((c == '-' || c == '+') && src_.compare(pos_ + 1, 2, std::string{close, '}'}) == 0) {
          sign = c;
          at = pos_ + 1;
        }
        if (src_.compare(at, 2, std::string{close, '}'}) == 0 && (sign != '+' || block)) {
          tokens_.push_back(Token{block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", line_});
          pos_ = at + 2;
          after_tag_end(sign, block);
          return Status::ok();
        }
      }
      if (c == '"' || c == '\'') {
        STRATA_RETURN_IF_ERROR(lex_string(c));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (is_name_start(c)) {
        size_t start = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        tokens_.push_back(Token{TokenType::kName, src_.substr(start, pos_ - start), line_});
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* two : kTwo) {
          if (src_.compare(pos_, 2, two) == 0) op = two;
        }
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos) {
            return fail(std::string("unexpected character '") + c + "'");
          }
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        }
        pos_ += op.size();
        tokens_.push_back(Token{TokenType::kOperator, op, line_});
      }
    }
  }

  Status lex_string(char quote) {
    size_t start = ++pos_;
    int start_line = line_;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      if (src_[pos_] == '\\') ++pos_;
      if (pos_ < src_.size()) line_ += src_[pos_] == '\n';
      ++pos_;
    }
    if (pos_ >= src_.size()) return fail("unclosed string literal");
    tokens_.push_back(Token{TokenType::kString,
                            unescape(std::string_view(src_).substr(start, pos_ - start)),
                            start_line});
    ++pos_;
    return Status::ok();
  }

  void lex_number() {
    size_t start = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
        ++pos_;
    };
    digits();
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t save = pos_++;
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
      if (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) {
        is_float = true;
        digits();
      } else {
        pos_ = save;
      }
    }
    std::string text;
    for (size_t i = start; i < pos_; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    tokens_.push_back(Token{is_float ? TokenType::kFloat : TokenType::kInteger, text, line_});
  }

  std::string src_;
  LexOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

// jinja2 joins source.splitlines() with "\n": newlines normalized, one trailing newline dropped.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source, const LexOptions& options) {
  Lexer lexer(normalize_newlines(source), options);
  return lexer.run();
}

}  // namespace strata::chat::jinja
