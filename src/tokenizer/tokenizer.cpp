// Encoding: special-token splitting, normalisation, the pre-tokenizer, and the ranked merge
// loop (a linked list of symbols and a min-heap of candidate pairs, O(n log n) per word)
// shared by byte-level BPE and SentencePiece.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <queue>

#include "core/check.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {

namespace {

constexpr int32_t kDead = -2;  // a symbol merged into its left neighbour
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr size_t kMaxCachedWordBytes = 64;

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
    const SpecialToken* hit = match_special(text.substr(i), parse_special);
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
  for (const Fragment& f : fragments) {
    if (f.id >= 0) {
      out.push_back(f.id);
    } else {
      encode_fragment(f.text, out, cache);
    }
  }
  if (add_special && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void Tokenizer::encode_fragment(std::string_view text, std::vector<int32_t>& out,
                                std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  std::string normalized;
  if (vocab_.normalize_nfc) {
    normalized = nfc(text);
    text = normalized;
  }
  if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
    encode_byte_level(text, out, cache);
  } else {
    encode_sentencepiece(text, out, cache);
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

void Tokenizer::encode_sentencepiece(std::string_view text, std::vector<int32_t>& out,
                                     std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  // Every text fragment gets the prefix (also after a special token), as HF's normalizer,
  // which runs per segment between added tokens, does.
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
