// UTF-8 helpers: validation, repair, NFC and the GPT-2 byte-level alphabet.
#include "tokenizer/unicode.h"
#include "core/utf8.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>

namespace strata::tokenizer {

int utf8_sequence_bytes(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // continuation byte or overlong lead
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

size_t utf8_valid_sequence_at(std::string_view s) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const int n = utf8_sequence_bytes(p[0]);
  if (n == 0 || static_cast<size_t>(n) > s.size()) return 0;
  if (n == 1) return 1;
  // The second byte's allowed range excludes overlongs, surrogates and code points > 10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  if (p[0] == 0xE0) lo = 0xA0;
  if (p[0] == 0xED) hi = 0x9F;
  if (p[0] == 0xF0) lo = 0x90;
  if (p[0] == 0xF4) hi = 0x8F;
  if (p[1] < lo || p[1] > hi) return 0;
  for (int k = 2; k < n; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
  }
  return static_cast<size_t>(n);
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_valid_sequence_at(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8_valid_sequence_at(s.substr(i));
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Whether p[0..len) (len below the sequence length its lead asks for) can still become a
// valid sequence when more bytes arrive.
static bool is_valid_utf8_prefix(const uint8_t* p, size_t len) {
  if (utf8_sequence_bytes(p[0]) <= 1) return false;
  if (len >= 2) {
    uint8_t lo = 0x80, hi = 0xBF;
    if (p[0] == 0xE0) lo = 0xA0;
    if (p[0] == 0xED) hi = 0x9F;
    if (p[0] == 0xF0) lo = 0x90;
    if (p[0] == 0xF4) hi = 0x8F;
    if (p[1] < lo || p[1] > hi) return false;
  }
  for (size_t k = 2; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return false;
  }
  return true;
}

size_t utf8_emittable_prefix(std::string_view s) {
  const size_t n = s.size();
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  // An unfinished sequence is at most 3 bytes long: look back for its lead byte.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = p[n - back];
    if ((b & 0xC0) == 0x80) continue;
    const int need = utf8_sequence_bytes(b);
    if (need > static_cast<int>(back) && is_valid_utf8_prefix(p + n - back, back)) return n - back;
    return n;
  }
  return n;
}

void append_utf8(std::string& out, uint32_t cp) { strata::append_utf8(out, cp); }

uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  const int n = utf8_sequence_bytes(b0);
  if (n <= 1 || i + static_cast<size_t>(n) > s.size()) {
    ++i;
    return b0;
  }
  uint32_t cp = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += static_cast<size_t>(n);
  return cp;
}

// Code points that NFC never changes and that never compose with what precedes them
// (combining marks start at U+0300; Cyrillic's own are U+0483-0489; Greek, Hangul jamo and
// Indic vowel signs stay outside). Text made only of them is already NFC. The unit test
// checks every code point of these ranges against utf8proc.
bool nfc_inert(uint32_t cp) {
  return cp < 0x300 || (cp >= 0x400 && cp < 0x483) || (cp >= 0x48A && cp < 0x530) ||
         (cp >= 0x4E00 && cp < 0xA000) || (cp >= 0xAC00 && cp < 0xD7A4) ||
         (cp >= 0x1F300 && cp < 0x1FB00);
}

std::string nfc(std::string_view s) {
  bool inert = true;
  for (size_t i = 0; i < s.size() && inert;) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    inert = nfc_inert(next_code_point(s, i));
  }
  if (inert) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(s);  // not valid UTF-8: leave it to the caller's repair
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

// GPT-2 (openai/gpt-2 encoder.py, bytes_to_unicode): printable Latin-1 bytes stand for
// themselves, the other 68 bytes get the code points 256, 257, ... in byte order.
ByteLevelAlphabet::ByteLevelAlphabet() {
  cp_to_byte_.fill(-1);
  uint32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next_extra++;
    append_utf8(byte_to_utf8_[b], cp);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet kAlphabet;
  return kAlphabet;
}

std::string ByteLevelAlphabet::encode_all(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_utf8_[static_cast<uint8_t>(c)];
  return out;
}

std::string ByteLevelAlphabet::decode_all(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i);
    const int b = decode(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace strata::tokenizer
