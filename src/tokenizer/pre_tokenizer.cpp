// Pre-tokenizer regexes per family and the PCRE2 splitter. The regexes are the ones the
// families publish in their tokenizer.json (Split / ByteLevel / Digits pre-tokenizers);
// the table maps GGUF's tokenizer.ggml.pre names onto them.
#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "core/check.h"

namespace strata::tokenizer {

const char* const kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: letters include combining marks (\p{M}).
const char* const kQwen35Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// o200k_base / o200k_harmony (tiktoken; gpt-4o, gpt-oss).
const char* const kO200kRegex =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM's letter class is a hand-written list of cased-letter ranges.
const char* const kDeepseekLlmLetters =
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-"
    "\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1"
    "\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-"
    "\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15"
    "\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D"
    "\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB"
    "\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D"
    "\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E"
    "\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-"
    "\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17"
    "\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-"
    "\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-"
    "\U0001E943]+";
const char* const kDeepseekPunct = "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+";
const char* const kCjk = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+";
// GPT-2's split as llama.cpp's digit-splitting families write it (no trailing \s+; the
// splitter keeps gaps, so the result is the same).
const char* const kGpt2NoTail =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

// DeepSeek V3 / R1.
const char* const kDeepseekV3Regex =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

// Only names whose tokenizer.json we know uses these exact splits; an unknown name is an
// error (a wrong split silently changes ids).
std::vector<PreFamily> make_families() {
  std::vector<PreFamily> f;
  // "default": a GGUF without tokenizer.ggml.pre (gpt-neox-20b and its kin use GPT-2's split).
  f.push_back({{"gpt-2", "default", "gpt2", "gpt-neox", "olmo"}, {kGpt2Regex}, false, false});
  f.push_back({{"mpt"}, {kGpt2Regex}, false, true});  // EleutherAI gpt-neox-20b: NFC
  f.push_back({{"llama-bpe", "llama3", "llama-v3", "falcon3"}, {kLlama3Regex}, true, false});
  f.push_back({{"qwen2", "qwen3"}, {kQwen2Regex}, false, true});
  // No normaliser in Qwen3.5's tokenizer.json: a decomposed "e\u0301" stays two symbols
  // (the family's reference ids, ggml-vocab-qwen35.gguf.out).
  f.push_back({{"qwen35"}, {kQwen35Regex}, false, false});
  f.push_back({{"gpt-4o", "o200k", "gpt-oss", "llama4"}, {kO200kRegex}, true, false});
  f.push_back({{"deepseek-llm"},
               {"[\r\n]", kDeepseekLlmLetters, kDeepseekPunct, "\\s+$", kCjk, "\\p{N}+"},
               false, false});
  f.push_back({{"deepseek-coder"},
               {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjk, "\\p{N}"}, false, false});
  f.push_back({{"deepseek-v3"},
               {"\\p{N}{1,3}", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+", kDeepseekV3Regex},
               false, false});
  f.push_back({{"falcon"},
               {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2NoTail, "[0-9][0-9][0-9]"}, false, false});
  f.push_back({{"starcoder", "refact", "smollm", "codeshell", "exaone", "minerva"},
               {"\\p{N}", kGpt2NoTail}, false, false});
  f.push_back({{"command-r"}, {"\\p{N}", kGpt2NoTail}, false, true});
  return f;
}

}  // namespace

const std::vector<PreFamily>& known_pre_families() {
  static const std::vector<PreFamily> kFamilies = make_families();
  return kFamilies;
}

const PreFamily* find_pre_family(std::string_view name) {
  for (const auto& f : known_pre_families()) {
    if (std::find(f.names.begin(), f.names.end(), name) != f.names.end()) return &f;
  }
  return nullptr;
}

const PreFamily* find_pre_family_by_regexes(const std::vector<std::string>& regexes) {
  for (const auto& f : known_pre_families()) {
    if (f.regexes == regexes) return &f;
  }
  return nullptr;
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

PreTokenizer::~PreTokenizer() = default;

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::compile(const std::vector<std::string>& regexes) {
  std::unique_ptr<PreTokenizer> pt(new PreTokenizer());
  for (const auto& re : regexes) {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    auto c = std::make_unique<Compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                            PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_offset, nullptr);
    if (!c->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return error(ErrorCode::kUnsupported,
                   "pre-tokenizer regex does not compile at offset " + std::to_string(err_offset) +
                       " (" + reinterpret_cast<const char*>(msg) + "): " + re);
    }
    c->jit = pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE) == 0;
    pt->compiled_.push_back(std::move(c));
  }
  return pt;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<std::string_view> pieces{text};
  std::vector<std::string_view> next;
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  STRATA_CHECK(md != nullptr);
  for (const auto& c : compiled_) {
    next.clear();
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0, last = 0;
      while (pos < piece.size()) {
        const int rc = c->jit ? pcre2_jit_match(c->code, subject, piece.size(), pos, 0, md, nullptr)
                              : pcre2_match(c->code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK,
                                            md, nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t s = ov[0], e = ov[1];
        if (e == s) {  // an empty match splits nothing; step over one code point
          pos = s + 1;
          while (pos < piece.size() && (static_cast<uint8_t>(piece[pos]) & 0xC0) == 0x80) ++pos;
          continue;
        }
        if (s > last) next.push_back(piece.substr(last, s - last));
        next.push_back(piece.substr(s, e - s));
        last = pos = e;
      }
      if (last < piece.size()) next.push_back(piece.substr(last));
    }
    pieces.swap(next);
  }
  pcre2_match_data_free(md);
  out.insert(out.end(), pieces.begin(), pieces.end());
}

}  // namespace strata::tokenizer
