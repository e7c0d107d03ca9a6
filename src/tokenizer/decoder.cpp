// Decoding: ids -> bytes all at once, and the streaming decoder that only ever emits
// complete, valid UTF-8.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special && is_control(id)) continue;
    out += pieces_[static_cast<size_t>(id)];
  }
  // HF's SentencePiece decoders end with Strip(' ', 1, 0): the prefix space encode added.
  if (strips_leading_space() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special,
                                       bool strip_leading_space)
    : tokenizer_(tokenizer), skip_special_(skip_special), strip_leading_space_(strip_leading_space) {}

std::string IncrementalDecoder::add(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) return take_complete(false);
  if (skip_special_ && tokenizer_.is_control(id)) return take_complete(false);
  pending_ += tokenizer_.token_to_piece(id);
  if (at_start_ && !pending_.empty()) {
    // Only the very first byte of the stream may be the prefix space.
    if (strip_leading_space_ && pending_[0] == ' ') pending_.erase(0, 1);
    at_start_ = false;
  }
  return take_complete(false);
}

std::string IncrementalDecoder::flush() {
  std::string out = take_complete(true);
  at_start_ = true;
  return out;
}

std::string IncrementalDecoder::take_complete(bool final_flush) {
  const size_t n = final_flush ? pending_.size() : utf8_emittable_prefix(pending_);
  if (n == 0) return {};
  std::string_view ready(pending_.data(), n);
  std::string out = is_valid_utf8(ready) ? std::string(ready) : sanitize_utf8(ready);
  pending_.erase(0, n);
  return out;
}

}  // namespace strata::tokenizer
