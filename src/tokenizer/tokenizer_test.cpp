// Unit tests on small hand-made vocabularies: merge order, special tokens, SentencePiece
// byte fallback, UTF-8 helpers and the incremental decoder's hold-back.
#include <gtest/gtest.h>

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
