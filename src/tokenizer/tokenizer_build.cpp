// Tokenizer construction: the token index, decoded pieces, merge table (from merges or
// from SentencePiece scores), the special-token trie and the end-of-generation ids.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/check.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

bool is_special_type(TokenType t) { return t == TokenType::kControl || t == TokenType::kUserDefined; }

}  // namespace

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
  for (int b = 0; b < 256; ++b) {
    if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
      byte_ids_[b] = token_id(ByteLevelAlphabet::get().encode(static_cast<uint8_t>(b)));
    } else {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      byte_ids_[b] = token_id(name);
    }
  }
  build_pieces();
  if (vocab_.algorithm == Algorithm::kByteLevelBpe) {
    std::vector<std::string> regexes = vocab_.pre_regexes;
    if (regexes.empty()) regexes.push_back(kGpt2Regex);
    STRATA_ASSIGN_OR_RETURN(pre_, PreTokenizer::compile(regexes));
  } else {
    build_word_cuts();
  }
  STRATA_RETURN_IF_ERROR(build_merges());
  build_specials();
  build_eog();
  return Status::ok();
}

void Tokenizer::build_pieces() {
  const auto& alphabet = ByteLevelAlphabet::get();
  const bool spm = vocab_.algorithm == Algorithm::kSentencePiece;
  pieces_.resize(vocab_.tokens.size());
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    const std::string& text = vocab_.tokens[i];
    const TokenType type = vocab_.types[i];
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
}

void Tokenizer::build_word_cuts() {
  for (const std::string& text : vocab_.tokens) {
    for (size_t k = text.find(kSpmSpace, 1); k != std::string::npos; k = text.find(kSpmSpace, k + 1)) {
      size_t b = k - 1;
      while (b > 0 && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
      chars_before_space_.insert(text.substr(b, k - b));
    }
  }
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
  // Build with per-node maps, then flatten into sorted edge ranges.
  std::vector<std::map<uint8_t, uint32_t>> children(1);
  std::vector<int32_t> ends(1, -1);
  for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
    const TokenType type = vocab_.types[id];
    const std::string_view text = vocab_.tokens[id];
    if (!is_special_type(type) || text.empty()) continue;
    uint32_t node = 0;
    for (char c : text) {
      const auto b = static_cast<uint8_t>(c);
      auto it = children[node].find(b);
      if (it == children[node].end()) {
        it = children[node].emplace(b, static_cast<uint32_t>(children.size())).first;
        children.emplace_back();
        ends.push_back(-1);
      }
      node = it->second;
    }
    if (ends[node] >= 0) continue;  // the same text twice: the lower id wins
    const uint8_t flags = id < vocab_.strip_flags.size() ? vocab_.strip_flags[id] : 0;
    ends[node] = static_cast<int32_t>(specials_.size());
    specials_.push_back({text, static_cast<int32_t>(id), type == TokenType::kControl,
                         (flags & 1) != 0, (flags & 2) != 0});
  }
  trie_.assign(children.size(), {});
  trie_edges_.clear();
  for (size_t node = 0; node < children.size(); ++node) {
    trie_[node].edges_begin = static_cast<uint32_t>(trie_edges_.size());
    for (const auto& [b, child] : children[node]) trie_edges_.emplace_back(b, child);
    trie_[node].edges_end = static_cast<uint32_t>(trie_edges_.size());
    trie_[node].special_idx = ends[node];
  }
}

const Tokenizer::SpecialToken* Tokenizer::match_special(std::string_view text, bool parse_special) const {
  const SpecialToken* best = nullptr;
  uint32_t node = 0;
  for (char c : text) {
    const auto b = static_cast<uint8_t>(c);
    const auto* first = trie_edges_.data() + trie_[node].edges_begin;
    const auto* last = trie_edges_.data() + trie_[node].edges_end;
    const auto* edge = std::lower_bound(first, last, b, [](const auto& e, uint8_t v) { return e.first < v; });
    if (edge == last || edge->first != b) break;
    node = edge->second;
    const int32_t idx = trie_[node].special_idx;
    if (idx >= 0 && (parse_special || !specials_[static_cast<size_t>(idx)].control)) {
      best = &specials_[static_cast<size_t>(idx)];
    }
  }
  return best;
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

}  // namespace strata::tokenizer
