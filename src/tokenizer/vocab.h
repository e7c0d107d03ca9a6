// The in-memory tokenizer model both importers fill (GGUF metadata, Hugging Face
// tokenizer.json) and the Tokenizer is built from; also what to_gguf_metadata writes back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::tokenizer {

// GGUF's tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special: bos/eos/<|im_start|>; matched only with parse_special
  kUserDefined = 4,  // added tokens that are not special: always matched as whole pieces
  kUnused = 5,
  kByte = 6,         // <0xNN> byte-fallback tokens of SentencePiece vocabularies
};

enum class Algorithm {
  kByteLevelBpe,    // GPT-2 style: bytes -> printable alphabet, regex pre-tokens, ranked merges
  kSentencePiece,   // SentencePiece BPE: chars, ' ' -> U+2581, merges by score or rank,
                    // byte fallback to <0xNN>
};

struct Vocab {
  Algorithm algorithm = Algorithm::kByteLevelBpe;
  std::string pre;                       // tokenizer.ggml.pre ("gpt-2", "llama-bpe", ...)
  std::vector<std::string> pre_regexes;  // Isolated splits, applied in order (byte-level only)
  bool ignore_merges = false;            // a pre-token already in the vocabulary is one token
  bool normalize_nfc = false;
  bool add_space_prefix = false;         // SentencePiece: prepend U+2581 to each text fragment
  bool add_bos = false;
  bool add_eos = false;

  // [num_tokens] token texts; byte-level normal tokens are in the byte alphabet, control and
  // user-defined tokens are raw text.
  std::vector<std::string> tokens;
  std::vector<float> scores;       // [num_tokens] SentencePiece scores; empty for BPE
  std::vector<TokenType> types;    // [num_tokens]
  std::vector<std::string> merges; // "left right", rank = index; empty: merge by score
  // Per-token HF added-token flags (lstrip/rstrip), empty when none are set.
  std::vector<uint8_t> strip_flags;  // bit 0: lstrip, bit 1: rstrip

  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  int32_t eot_id = -1;
  int32_t eom_id = -1;
  std::string chat_template;
};

}  // namespace strata::tokenizer
