// UTF-8 helpers the tokenizer needs: validation and repair, the GPT-2 byte-level alphabet,
// NFC normalisation (utf8proc) and the "complete prefix" test the streaming decoder uses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::tokenizer {

// Length of the UTF-8 sequence a lead byte starts (1..4), or 0 for a continuation or an
// invalid lead byte.
int utf8_sequence_bytes(uint8_t lead);

// Bytes of the first complete, valid UTF-8 sequence at s[0] (1..4), or 0 if s[0] starts no
// valid sequence within s (truncated or malformed).
size_t utf8_valid_sequence_at(std::string_view s);

bool is_valid_utf8(std::string_view s);

// Copy of `s` with every malformed byte replaced by U+FFFD (one per invalid byte).
std::string sanitize_utf8(std::string_view s);

// Number of leading bytes of `s` that can be emitted now: everything except a trailing,
// still-incomplete (but so far valid) multi-byte sequence. Malformed bytes count as
// emittable (the caller replaces them).
size_t utf8_emittable_prefix(std::string_view s);

// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

// NFC of valid UTF-8. Text made only of NFC-inert code points (ASCII, Latin-1, Cyrillic,
// CJK ideographs, Hangul syllables, emoji) is returned as is without calling utf8proc.
std::string nfc(std::string_view s);
// Whether NFC never changes `cp` and `cp` never composes with a preceding character.
bool nfc_inert(uint32_t cp);

// GPT-2's byte-level alphabet: every byte maps to one printable code point so that BPE
// vocabularies never contain raw control bytes or spaces ("Ġ" is the space, U+0120).
class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& get();
  // UTF-8 of the code point that stands for byte b.
  const std::string& encode(uint8_t b) const { return byte_to_utf8_[b]; }
  // The byte that code point cp stands for, or -1.
  int decode(uint32_t cp) const { return cp < cp_to_byte_.size() ? cp_to_byte_[cp] : -1; }
  std::string encode_all(std::string_view bytes) const;
  // Maps a byte-level string back to bytes; code points outside the alphabet pass through.
  std::string decode_all(std::string_view text) const;

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, 324> cp_to_byte_;  // the alphabet's code points are all below 324
};

// Decodes one code point at s[i] of valid UTF-8 and advances i.
uint32_t next_code_point(std::string_view s, size_t& i);

}  // namespace strata::tokenizer
