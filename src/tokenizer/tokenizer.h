// Tokenizer: text <-> token ids for GGUF models. Byte-level BPE (GPT-2 lineage: Llama 3,
// Qwen, DeepSeek, StarCoder, gpt-oss ...) and SentencePiece BPE (Llama 2, Phi-3, Gemma),
// built from GGUF metadata or a Hugging Face tokenizer.json; plus the streaming decoder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace strata::tokenizer {

class PreTokenizer;

// Immutable once built: encode and decode are const and safe to call from many threads
// (the word cache lives in each encode call).
class Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> from_vocab(Vocab vocab);
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::File& file);
  // tokenizer.json and tokenizer_config.json texts (the config may be empty).
  static Result<std::unique_ptr<Tokenizer>> from_hf_json(std::string_view tokenizer_json,
                                                         std::string_view tokenizer_config_json);
  ~Tokenizer();

  // add_special: the BOS/EOS the vocabulary asks for (add_bos_token / add_eos_token).
  // parse_special: control tokens (<|im_start|>, <bos>) written in the text become their ids;
  // otherwise they are tokenized as plain text. User-defined (non-special added) tokens are
  // always matched whole, as Hugging Face tokenizers and llama.cpp do.
  // Invalid UTF-8 in `text` is replaced by U+FFFD first.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes of all tokens, concatenated (may be invalid UTF-8 where ids split a character).
  // SentencePiece vocabularies with a space prefix drop the first leading space.
  // skip_special leaves out control tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The bytes one token stands for (byte-level alphabet undone, U+2581 -> ' ', <0xNN> -> byte).
  const std::string& token_to_piece(int32_t id) const;
  // The token's text as stored in the vocabulary.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Exact vocabulary lookup of a token text; -1 when absent.
  int32_t token_id(std::string_view text) const;

  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  int32_t unk_id() const { return vocab_.unk_id; }
  int32_t pad_id() const { return vocab_.pad_id; }
  // End-of-generation ids: eos, eot, eom and known end tokens (<|im_end|>, <|eot_id|>,
  // <end_of_turn>, <|return|> ...).
  const std::unordered_set<int32_t>& eog_ids() const { return eog_ids_; }
  bool is_eog(int32_t id) const { return eog_ids_.count(id) != 0; }
  bool is_control(int32_t id) const;
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  const Vocab& vocab() const { return vocab_; }
  const std::string& chat_template() const { return vocab_.chat_template; }
  // Whether decode() drops a leading space (SentencePiece with add_space_prefix).
  bool strips_leading_space() const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result_id;
  };
  struct SpecialToken {
    std::string_view text;
    int32_t id;
    bool control;
    bool lstrip;
    bool rstrip;
  };
  struct Fragment {
    std::string_view text;  // raw text when id < 0
    int32_t id = -1;
  };

  explicit Tokenizer(Vocab vocab);
  Status build();
  void build_pieces();
  void build_word_cuts();
  Status build_merges();
  void build_specials();
  void build_eog();

  void split_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  void encode_fragment(std::string_view text, std::vector<int32_t>& out,
                       std::unordered_map<std::string, std::vector<int32_t>>& cache) const;
  void encode_byte_level(std::string_view text, std::vector<int32_t>& out,
                         std::unordered_map<std::string, std::vector<int32_t>>& cache) const;
  void encode_sentencepiece(std::string_view text, std::vector<int32_t>& out,
                            std::unordered_map<std::string, std::vector<int32_t>>& cache) const;
  void encode_sentencepiece_word(std::string_view word, std::vector<int32_t>& out) const;
  // Merges the initial symbols of one word (their ids; -1 = no token) in rank order.
  void merge_word(std::vector<int32_t>& ids) const;

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  Vocab vocab_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unique_ptr<PreTokenizer> pre_;
  int32_t byte_ids_[256];  // byte-level: the token of each byte; SentencePiece: <0xNN>
  std::vector<std::string> pieces_;  // [num_tokens] decoded bytes of each token
  // Special and user-defined tokens in a byte trie, so that finding the longest one at a
  // text position costs the length of the match, not one hash per candidate length.
  struct TrieNode {
    uint32_t edges_begin = 0;
    uint32_t edges_end = 0;
    int32_t special_idx = -1;  // index into specials_ of the token ending here
  };
  std::vector<SpecialToken> specials_;
  std::vector<TrieNode> trie_;                          // [0] is the root
  std::vector<std::pair<uint8_t, uint32_t>> trie_edges_;  // (byte, child), sorted per node
  const SpecialToken* match_special(std::string_view text, bool parse_special) const;
  std::unordered_set<int32_t> eog_ids_;
  // SentencePiece: characters some token has right before U+2581 (no word cut there).
  std::unordered_set<std::string> chars_before_space_;
};

// GGUF metadata that describes `vocab` (tokenizer.ggml.*, tokenizer.chat_template), for
// writing synthesized or converted models.
std::vector<gguf::KeyValue> to_gguf_metadata(const Vocab& vocab);
// Reads the tokenizer.* keys of a GGUF file into a Vocab.
Result<Vocab> vocab_from_gguf(const gguf::File& file);
Result<Vocab> vocab_from_hf_json(std::string_view tokenizer_json,
                                 std::string_view tokenizer_config_json);

// Streaming detokenizer: feed ids as they are generated, get text that is always valid
// UTF-8. A character split across tokens is held back until complete; bytes that can never
// form a character become U+FFFD.
class IncrementalDecoder {
 public:
  // strip_leading_space: drop a space at the very start (SentencePiece prompts decoded from
  // the first token); off for continuations of a prompt.
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = false,
                              bool strip_leading_space = false);
  // Text that became complete with this token (possibly empty).
  std::string add(int32_t id);
  // Everything still held back, malformed leftovers as U+FFFD. Resets the decoder.
  std::string flush();
  // Bytes held back so far.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string take_complete(bool final_flush);
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool strip_leading_space_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace strata::tokenizer
