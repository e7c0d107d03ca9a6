// Unit tests on small hand-made vocabularies: merge order, special tokens, SentencePiece
// byte fallback, UTF-8 helpers and the incremental decoder's hold-back.
#include <gtest/gtest.h>

#include <utf8proc.h>

#include <random>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {
namespace {

// Byte-level vocabulary: the 256 byte symbols, a few merges, and two added tokens.
Vocab tiny_byte_level() {
  Vocab v;
  v.algorithm = Algorithm::kByteLevelBpe;
  v.pre = "gpt-2";
  v.pre_regexes = {kGpt2Regex};
  const auto& a = ByteLevelAlphabet::get();
  for (int b = 0; b < 256; ++b) v.tokens.push_back(a.encode(static_cast<uint8_t>(b)));
  for (const char* m : {"h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"}) {
    v.merges.push_back(m);
    std::string s = m;
    s.erase(s.find(' '), 1);
    v.tokens.push_back(s);
  }
  v.tokens.push_back("<|end|>");
  v.tokens.push_back("<tool>");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types[v.tokens.size() - 2] = TokenType::kControl;
  v.types[v.tokens.size() - 1] = TokenType::kUserDefined;
  v.eos_id = static_cast<int32_t>(v.tokens.size() - 2);
  return v;
}

TEST(Tokenizer, ByteLevelMergesByRank) {
  auto tok = Tokenizer::from_vocab(tiny_byte_level());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const auto ids = (*tok)->encode("hello wo", false, false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ((*tok)->token_text(ids[0]), "hello");
  EXPECT_EQ((*tok)->token_text(ids[1]), "Ġwo");
  EXPECT_EQ((*tok)->decode(ids), "hello wo");
}

// A pre-tokenizer no family knows travels through GGUF in tokenizer.strata.* keys.
TEST(Tokenizer, CustomPreTokenizerSurvivesGgufMetadata) {
  Vocab v = tiny_byte_level();
  v.pre = "custom";
  v.pre_regexes = {"\\p{N}", kGpt2Regex};
  v.normalize_nfc = true;
  v.chat_template = "{{ messages }}";
  gguf::Writer w;
  for (auto& kv : to_gguf_metadata(v)) w.set(kv.key, kv.value);
  const auto bytes = w.write_to_buffer();
  auto file = gguf::File::parse(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto back = vocab_from_gguf(**file);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->pre_regexes, v.pre_regexes);
  EXPECT_TRUE(back->normalize_nfc);
  EXPECT_EQ(back->tokens, v.tokens);
  EXPECT_EQ(back->types, v.types);
  EXPECT_EQ(back->merges, v.merges);
  EXPECT_EQ(back->eos_id, v.eos_id);
  EXPECT_EQ(back->chat_template, v.chat_template);
  // A known family needs no extra keys.
  v.pre = "gpt-2";
  v.pre_regexes = {kGpt2Regex};
  v.normalize_nfc = false;
  for (const auto& kv : to_gguf_metadata(v)) EXPECT_EQ(kv.key.find("tokenizer.strata."), std::string::npos);
}

TEST(Tokenizer, UnknownPreTokenizerIsAnError) {
  gguf::Writer w;
  Vocab v = tiny_byte_level();
  v.pre = "no-such-family";
  for (auto& kv : to_gguf_metadata(v)) {
    if (kv.key.rfind("tokenizer.strata.", 0) != 0) w.set(kv.key, kv.value);
  }
  const auto bytes = w.write_to_buffer();
  auto file = gguf::File::parse(bytes);
  ASSERT_TRUE(file.is_ok());
  auto tok = Tokenizer::from_gguf(**file);
  ASSERT_FALSE(tok.is_ok());
  EXPECT_EQ(tok.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(tok.status().message().find("no-such-family"), std::string::npos);
}

TEST(Tokenizer, ControlTokensOnlyWithParseSpecial) {
  auto tok = std::move(Tokenizer::from_vocab(tiny_byte_level())).value();
  const int32_t end = tok->token_id("<|end|>");
  const int32_t tool = tok->token_id("<tool>");
  auto with = tok->encode("a<|end|>b", false, true);
  EXPECT_EQ(with, (std::vector<int32_t>{tok->token_id("a"), end, tok->token_id("b")}));
  auto without = tok->encode("a<|end|>b", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), end), 0);
  EXPECT_EQ(tok->decode(without), "a<|end|>b");
  // User-defined tokens are matched whole either way.
  EXPECT_EQ(tok->encode("<tool>", false, false), std::vector<int32_t>{tool});
  EXPECT_TRUE(tok->is_eog(end));
  EXPECT_EQ(tok->decode({end}, /*skip_special=*/true), "");
}

TEST(Tokenizer, InvalidUtf8IsRepaired) {
  auto tok = std::move(Tokenizer::from_vocab(tiny_byte_level())).value();
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b", false, false)), "a\xEF\xBF\xBD" "b");
}

Vocab tiny_spm() {
  Vocab v;
  v.algorithm = Algorithm::kSentencePiece;
  v.add_space_prefix = true;
  v.add_bos = true;
  auto add = [&](std::string t, float score, TokenType type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0, TokenType::kByte);
  }
  add("\xE2\x96\x81", -1, TokenType::kNormal);
  for (const char* c : {"a", "b", "c"}) add(c, -2, TokenType::kNormal);
  add("ab", -3, TokenType::kNormal);
  add("\xE2\x96\x81" "ab", -4, TokenType::kNormal);
  add("bc", -5, TokenType::kNormal);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

TEST(Tokenizer, SentencePieceScoresAndByteFallback) {
  auto tok = std::move(Tokenizer::from_vocab(tiny_spm())).value();
  // "abc": ab (-3) beats bc (-5); then ▁ + ab -> ▁ab.
  auto ids = tok->encode("abc", true, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok->token_text(ids[1]), "\xE2\x96\x81" "ab");
  EXPECT_EQ(tok->token_text(ids[2]), "c");
  EXPECT_EQ(tok->decode(ids, true), "abc");
  // "é" is no token: two byte tokens.
  ids = tok->encode("\xC3\xA9", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(tok->token_text(ids[1]), "<0xC3>");
  EXPECT_EQ(tok->token_text(ids[2]), "<0xA9>");
  EXPECT_EQ(tok->decode(ids), "\xC3\xA9");
}

TEST(Unicode, EmittablePrefixHoldsBackIncompleteSequences) {
  EXPECT_EQ(utf8_emittable_prefix("ab"), 2u);
  EXPECT_EQ(utf8_emittable_prefix("a\xE4"), 1u);
  EXPECT_EQ(utf8_emittable_prefix("a\xE4\xBD"), 1u);
  EXPECT_EQ(utf8_emittable_prefix("a\xE4\xBD\xA0"), 4u);
  EXPECT_EQ(utf8_emittable_prefix("a\xF0\x9F\x99"), 1u);
  EXPECT_EQ(utf8_emittable_prefix("a\xE4" "b"), 3u);      // broken: emit (as U+FFFD)
  EXPECT_EQ(utf8_emittable_prefix("a\xED\xA0"), 3u);      // a surrogate can never complete
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x99\x82"));
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));
}

// The NFC fast path: an inert code point has combining class 0, is its own NFC, and is
// never the second half of a canonical decomposition (so it never composes).
TEST(Unicode, NfcInertRangesAreInert) {
  std::vector<bool> second(0x110000, false);
  for (int32_t cp = 0; cp < 0x110000; ++cp) {
    utf8proc_int32_t out[4];
    int last_boundclass = 0;
    const auto n = utf8proc_decompose_char(cp, out, 4, UTF8PROC_DECOMPOSE, &last_boundclass);
    if (n == 2) second[static_cast<size_t>(out[1])] = true;
  }
  int checked = 0;
  for (uint32_t cp = 0x80; cp < 0x110000; ++cp) {
    if (!nfc_inert(cp)) continue;
    ++checked;
    ASSERT_EQ(utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class, 0) << cp;
    ASSERT_FALSE(second[cp]) << cp;
    std::string s;
    append_utf8(s, cp);
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                                &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    ASSERT_EQ(std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n)), s) << cp;
    std::free(out);
  }
  EXPECT_GT(checked, 30000);
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");  // composed by utf8proc
}

TEST(IncrementalDecoder, ByteTokensNeverEmitBrokenUtf8) {
  auto tok = std::move(Tokenizer::from_vocab(tiny_spm())).value();
  // Random byte strings (valid and not) fed as <0xNN> tokens, one byte per token.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      static const char* const kChunks[] = {"a", "\xC3\xA9", "\xE4\xBD\xA0", "\xF0\x9F\x99\x82", "\xFF", "\xE4"};
      bytes += kChunks[rng() % 6];
    }
    IncrementalDecoder dec(*tok);
    std::string out;
    for (unsigned char b : bytes) {
      const std::string part = dec.add(3 + b);
      EXPECT_TRUE(is_valid_utf8(part));
      out += part;
    }
    out += dec.flush();
    EXPECT_TRUE(is_valid_utf8(out));
    EXPECT_EQ(out, sanitize_utf8(bytes));
  }
}

TEST(PreTokenizer, Gpt2SplitKeepsEveryByte) {
  auto pre = std::move(PreTokenizer::compile({kGpt2Regex})).value();
  std::vector<std::string_view> words;
  pre->split("Hello, world!  It's 2024\n\tok", words);
  std::string joined;
  for (auto w : words) joined += w;
  EXPECT_EQ(joined, "Hello, world!  It's 2024\n\tok");
  EXPECT_EQ(words[0], "Hello");
  EXPECT_EQ(words[1], ",");
  EXPECT_EQ(words[2], " world");
}

}  // namespace
}  // namespace strata::tokenizer
