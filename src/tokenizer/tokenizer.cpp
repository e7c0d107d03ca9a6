// Tokenizer construction and encoding: special-token splitting, normalisation, the
// pre-tokenizer, and the ranked merge loop (a linked list of symbols and a min-heap of
// candidate pairs, O(n log n) per word) shared by byte-level BPE and SentencePiece.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <queue>

#include "core/check.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {

namespace {

constexpr int32_t kDead = -2;  // a symbol merged into its left neighbour
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr size_t kMaxCachedWordBytes = 64;

bool is_special_type(TokenType t) { return t == TokenType::kControl || t == TokenType::kUserDefined; }

std::string replace_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == ' ') {
      out += kSpmSpace;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_vocab(Vocab vocab) {
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(vocab)));
  STRATA_RETURN_IF_ERROR(t->build());
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::File& file) {
  STRATA_ASSIGN_OR_RETURN(Vocab v, vocab_from_gguf(file));
  return from_vocab(std::move(v));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                                           std::string_view tokenizer_config_json) {
  STRATA_ASSIGN_OR_RETURN(Vocab v, vocab_from_hf_json(tokenizer_json, tokenizer_config_json));
  return from_vocab(std::move(v));
}

Status Tokenizer::build() {
  const size_t n = vocab_.tokens.size();
  if (n == 0) return error(ErrorCode::kCorrupt, "tokenizer has no tokens");
  if (vocab_.types.empty()) vocab_.types.assign(n, TokenType::kNormal);
  if (vocab_.types.size() != n) {
    return error(ErrorCode::kCorrupt, "tokenizer: " + std::to_string(vocab_.types.size()) +
                                          " token types for " + std::to_string(n) + " tokens");
  }
  if (!vocab_.scores.empty() && vocab_.scores.size() != n) {
    return error(ErrorCode::kCorrupt, "tokenizer: scores and tokens differ in count");
  }
  for (int32_t* id : {&vocab_.bos_id, &vocab_.eos_id, &vocab_.unk_id, &vocab_.pad_id,
                      &vocab_.eot_id, &vocab_.eom_id}) {
    if (*id >= static_cast<int32_t>(n)) *id = -1;  // an id past the vocabulary is no token
  }
  token_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) token_ids_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));

  const auto& alphabet = ByteLevelAlphabet::get();
  for (int b = 0; b < 256; ++b) {
    if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
      byte_ids_[b] = token_id(alphabet.encode(static_cast<uint8_t>(b)));
    } else {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      byte_ids_[b] = token_id(name);
    }
  }

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = vocab_.tokens[i];
    const TokenType type = vocab_.types[i];
    const bool spm = vocab_.algorithm == Algorithm::kSentencePiece;
    // Control tokens read as written. SentencePiece user-defined tokens may spell spaces as
    // U+2581 (Gemma's whitespace runs), which HF's decoder turns into spaces like any piece.
    if (type == TokenType::kControl || type == TokenType::kUnknown ||
        (type == TokenType::kUserDefined && !spm)) {
      pieces_[i] = text;
    } else if (!spm) {
      pieces_[i] = alphabet.decode_all(text);
    } else if (type == TokenType::kByte && text.size() == 6) {
      pieces_[i] = std::string(1, static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
    } else {
      std::string s;
      for (size_t k = 0; k < text.size();) {
        if (text.compare(k, 3, kSpmSpace) == 0) {
          s += ' ';
          k += 3;
        } else {
          s += text[k++];
        }
      }
      pieces_[i] = std::move(s);
    }
  }

  if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
    std::vector<std::string> regexes = vocab_.pre_regexes;
    if (regexes.empty()) regexes.push_back(kGpt2Regex);
    STRATA_ASSIGN_OR_RETURN(pre_, PreTokenizer::compile(regexes));
  }
  STRATA_RETURN_IF_ERROR(build_merges());
  if (vocab_.algorithm == Algorithm::kSentencePiece) {
    for (size_t id = 0; id < n; ++id) {
      const std::string& text = vocab_.tokens[id];
      for (size_t k = text.find(kSpmSpace, 1); k != std::string::npos; k = text.find(kSpmSpace, k + 1)) {
        size_t b = k - 1;
        while (b > 0 && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
        chars_before_space_.insert(text.substr(b, k - b));
      }
    }
  }
  build_specials();
  build_eog();
  return Status::ok();
}

Status Tokenizer::build_merges() {
  if (!vocab_.merges.empty()) {
    merges_.reserve(vocab_.merges.size() * 2);
    for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
      const std::string& m = vocab_.merges[rank];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) {
        return error(ErrorCode::kCorrupt, "tokenizer merge " + std::to_string(rank) +
                                              " has no space separating its two parts: '" + m + "'");
      }
      const int32_t a = token_id(std::string_view(m).substr(0, sp));
      const int32_t b = token_id(std::string_view(m).substr(sp + 1));
      const int32_t r = token_id(m.substr(0, sp) + m.substr(sp + 1));
      if (a < 0 || b < 0 || r < 0) continue;  // a merge whose parts are not tokens never fires
      merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(rank), r});
    }
    return Status::ok();
  }
  if (vocab_.algorithm != Algorithm::kSentencePiece || vocab_.scores.empty()) {
    return error(ErrorCode::kCorrupt, "BPE tokenizer has neither merges nor scores");
  }
  // SentencePiece BPE: two adjacent pieces merge when their concatenation is a token, the
  // highest-scoring one first. Ranks are the distinct scores in descending order, so equal
  // scores tie and the leftmost pair wins, as in sentencepiece's bpe_model.cc.
  std::vector<float> distinct = vocab_.scores;
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
    const TokenType type = vocab_.types[id];
    if (type != TokenType::kNormal && type != TokenType::kUserDefined) continue;
    const std::string_view text = vocab_.tokens[id];
    const auto rank = static_cast<int32_t>(
        std::lower_bound(distinct.begin(), distinct.end(), vocab_.scores[id], std::greater<>()) -
        distinct.begin());
    for (size_t k = 1; k < text.size(); ++k) {
      if ((static_cast<uint8_t>(text[k]) & 0xC0) == 0x80) continue;  // not a char boundary
      const int32_t a = token_id(text.substr(0, k));
      if (a < 0) continue;
      const int32_t b = token_id(text.substr(k));
      if (b < 0) continue;
      if (token_id(text) != static_cast<int32_t>(id)) continue;  // a duplicate text
      merges_.emplace(pair_key(a, b), Merge{rank, static_cast<int32_t>(id)});
    }
  }
  return Status::ok();
}

void Tokenizer::build_specials() {
  specials_.clear();
  for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
    const TokenType type = vocab_.types[id];
    if (!is_special_type(type) || vocab_.tokens[id].empty()) continue;
    const uint8_t flags = id < vocab_.strip_flags.size() ? vocab_.strip_flags[id] : 0;
    const std::string_view text = vocab_.tokens[id];
    if (special_index_.count(text)) continue;
    special_index_.emplace(text, static_cast<uint32_t>(specials_.size()));
    specials_.push_back({text, static_cast<int32_t>(id), type == TokenType::kControl,
                         (flags & 1) != 0, (flags & 2) != 0});
  }
  // Per first byte: the distinct lengths of the specials starting with it, longest first.
  specials_by_byte_.assign(256, {});
  for (const auto& s : specials_) {
    auto& lengths = specials_by_byte_[static_cast<uint8_t>(s.text[0])];
    const auto len = static_cast<uint32_t>(s.text.size());
    if (std::find(lengths.begin(), lengths.end(), len) == lengths.end()) lengths.push_back(len);
  }
  for (auto& lengths : specials_by_byte_) std::sort(lengths.begin(), lengths.end(), std::greater<>());
}

void Tokenizer::build_eog() {
  for (int32_t id : {vocab_.eos_id, vocab_.eot_id, vocab_.eom_id}) {
    if (id >= 0) eog_ids_.insert(id);
  }
  // Turn and message ends of the common chat formats. gpt-oss (harmony) ends a message with
  // <|end|> but the generation with <|return|> or <|call|>, so <|end|> counts only without them.
  static const char* const kEndNames[] = {
      "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<end_of_turn>", "<|endoftext|>", "<|return|>",
      "<|call|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "<|END_OF_TURN_TOKEN|>", "</s>",
      "<｜end▁of▁sentence｜>", "<|end_of_turn|>"};
  for (const char* name : kEndNames) {
    const int32_t id = token_id(name);
    if (id >= 0 && is_special_type(vocab_.types[id])) eog_ids_.insert(id);
  }
  const int32_t end = token_id("<|end|>");
  if (end >= 0 && token_id("<|return|>") < 0 && is_special_type(vocab_.types[end])) eog_ids_.insert(end);
}

int32_t Tokenizer::token_id(std::string_view text) const {
  // std::unordered_map<std::string> has no heterogeneous lookup before C++20's opt-in, and
  // this is not on the hot path (the merge loop works on ids).
  const auto it = token_ids_.find(std::string(text));
  return it == token_ids_.end() ? -1 : it->second;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  STRATA_CHECK(id >= 0 && id < vocab_size());
  return vocab_.tokens[static_cast<size_t>(id)];
}

const std::string& Tokenizer::token_to_piece(int32_t id) const {
  STRATA_CHECK(id >= 0 && id < vocab_size());
  return pieces_[static_cast<size_t>(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
  STRATA_CHECK(id >= 0 && id < vocab_size());
  return vocab_.types[static_cast<size_t>(id)];
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < vocab_size() && vocab_.types[static_cast<size_t>(id)] == TokenType::kControl;
}

bool Tokenizer::strips_leading_space() const {
  return vocab_.algorithm == Algorithm::kSentencePiece && vocab_.add_space_prefix;
}

void Tokenizer::split_special(std::string_view text, bool parse_special,
                              std::vector<Fragment>& out) const {
  size_t start = 0;  // start of the pending raw text
  size_t i = 0;
  bool strip_next = false;  // the previous special had rstrip
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < text.size()) {
    if (strip_next) {
      while (i < text.size() && is_space(text[i])) ++i;
      start = i;
      strip_next = false;
      if (i >= text.size()) break;
    }
    const auto& lengths = specials_by_byte_[static_cast<uint8_t>(text[i])];
    const SpecialToken* hit = nullptr;
    for (uint32_t len : lengths) {
      if (len > text.size() - i) continue;
      const auto it = special_index_.find(text.substr(i, len));
      if (it == special_index_.end()) continue;
      const SpecialToken& s = specials_[it->second];
      if (s.control && !parse_special) continue;
      hit = &s;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t end = i;
    if (hit->lstrip) {
      while (end > start && is_space(text[end - 1])) --end;
    }
    if (end > start) out.push_back({text.substr(start, end - start), -1});
    out.push_back({{}, hit->id});
    i += hit->text.size();
    start = i;
    strip_next = hit->rstrip;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = sanitize_utf8(text);
    text = repaired;
  }
  std::vector<Fragment> fragments;
  split_special(text, parse_special, fragments);
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  bool first = true;
  for (const Fragment& f : fragments) {
    if (f.id >= 0) {
      out.push_back(f.id);
    } else {
      encode_fragment(f.text, first, out, cache);
    }
    first = false;
  }
  if (add_special && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void Tokenizer::encode_fragment(std::string_view text, bool first, std::vector<int32_t>& out,
                                std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  std::string normalized;
  if (vocab_.normalize_nfc) {
    normalized = nfc(text);
    text = normalized;
  }
  if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
    encode_byte_level(text, out, cache);
  } else {
    encode_sentencepiece(text, first, out, cache);
  }
}

void Tokenizer::encode_byte_level(std::string_view text, std::vector<int32_t>& out,
                                  std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  std::vector<std::string_view> words;
  pre_->split(text, words);
  std::vector<int32_t> ids;
  std::string key;
  for (std::string_view word : words) {
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
      key.assign(word);
      const auto it = cache.find(key);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    ids.clear();
    int32_t whole = -1;
    if (vocab_.ignore_merges && word.size() > 1) {
      whole = token_id(ByteLevelAlphabet::get().encode_all(word));
    }
    if (whole >= 0) {
      ids.push_back(whole);
    } else {
      for (char c : word) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      merge_word(ids);
      ids.erase(std::remove_if(ids.begin(), ids.end(), [](int32_t id) { return id < 0; }), ids.end());
    }
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) cache.emplace(key, ids);
  }
}

void Tokenizer::encode_sentencepiece(std::string_view text, bool first, std::vector<int32_t>& out,
                                     std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  (void)first;  // every text fragment gets the prefix, as HF's per-segment normalizer does
  if (text.empty()) return;
  std::string norm;
  if (vocab_.add_space_prefix) norm = kSpmSpace;
  norm += replace_spaces(text);
  // Words: cut before a U+2581 that follows a character no token ever has before U+2581.
  // No symbol can span such a cut (every symbol is a token), so merging word by word is
  // exact, and keeps the heap small and the cache useful.
  const std::string_view all = norm;
  size_t word_start = 0;
  std::string prev_char;
  std::vector<int32_t> ids;
  std::string key;
  auto flush_word = [&](size_t end) {
    const std::string_view word = all.substr(word_start, end - word_start);
    word_start = end;
    if (word.empty()) return;
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
      key.assign(word);
      const auto it = cache.find(key);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    ids.clear();
    encode_sentencepiece_word(word, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) cache.emplace(key, ids);
  };
  for (size_t i = 0; i < all.size();) {
    size_t len = utf8_valid_sequence_at(all.substr(i));
    if (len == 0) len = 1;
    const std::string_view ch = all.substr(i, len);
    if (ch == kSpmSpace && !prev_char.empty() && prev_char != kSpmSpace &&
        !chars_before_space_.count(prev_char)) {
      flush_word(i);
    }
    prev_char.assign(ch);
    i += len;
  }
  flush_word(all.size());
}

void Tokenizer::encode_sentencepiece_word(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols: one per UTF-8 character; -1 where the character is no token (byte fallback).
  std::vector<int32_t> ids;
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // [symbol] byte offset, length in word
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8_valid_sequence_at(word.substr(i));
    if (len == 0) len = 1;
    ids.push_back(token_id(word.substr(i, len)));
    spans.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(len));
    i += len;
  }
  merge_word(ids);
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] == kDead) continue;
    if (ids[k] >= 0) {
      out.push_back(ids[k]);
      continue;
    }
    bool all_bytes = true;
    for (uint32_t b = 0; b < spans[k].second; ++b) {
      all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(word[spans[k].first + b])] >= 0;
    }
    if (!all_bytes) {
      if (vocab_.unk_id >= 0) out.push_back(vocab_.unk_id);
      continue;
    }
    for (uint32_t b = 0; b < spans[k].second; ++b) {
      out.push_back(byte_ids_[static_cast<uint8_t>(word[spans[k].first + b])]);
    }
  }
}

void Tokenizer::merge_word(std::vector<int32_t>& ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  struct Candidate {
    int32_t rank;
    int32_t left;  // symbol index; ties go to the leftmost pair
    int32_t left_id;
    int32_t right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::vector<int32_t> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = next[left];
    if (right < 0 || ids[left] < 0 || ids[right] < 0) return;
    const auto it = merges_.find(pair_key(ids[left], ids[right]));
    if (it != merges_.end()) heap.push({it->second.rank, left, ids[left], ids[right]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.left];
    if (ids[c.left] != c.left_id || right < 0 || ids[right] != c.right_id) continue;  // stale
    ids[c.left] = merges_.find(pair_key(c.left_id, c.right_id))->second.result_id;
    ids[right] = kDead;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
}

}  // namespace strata::tokenizer
