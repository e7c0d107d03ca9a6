// Pre-tokenizers: the regex splits each byte-level BPE family applies before merging
// (PCRE2 with Unicode properties, JIT-compiled), and the table of known families.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata::tokenizer {

// A family's pre-tokenizer as published in its tokenizer.json (Split regexes with the
// "Isolated" behaviour, then ByteLevel), keyed by GGUF's tokenizer.ggml.pre names.
struct PreFamily {
  std::vector<std::string> names;    // tokenizer.ggml.pre values; names[0] is canonical
  std::vector<std::string> regexes;  // applied in order, each splitting every piece
  bool ignore_merges = false;
  bool normalize_nfc = false;
};

const std::vector<PreFamily>& known_pre_families();
// The family a tokenizer.ggml.pre value names, or nullptr.
const PreFamily* find_pre_family(std::string_view name);
// The family whose regex list equals `regexes`, or nullptr.
const PreFamily* find_pre_family_by_regexes(const std::vector<std::string>& regexes);

// GPT-2's ByteLevel(use_regex=true) split.
extern const char* const kGpt2Regex;

class PreTokenizer {
 public:
  static Result<std::unique_ptr<PreTokenizer>> compile(const std::vector<std::string>& regexes);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits valid UTF-8 `text` into pre-tokens (views into text), appended to `out`.
  // Every regex splits every current piece into its matches and the gaps between them.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  PreTokenizer() = default;
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

}  // namespace strata::tokenizer
