// Chunk-split invariance, as a property: realistic outputs of every family and random
// soups of marker fragments, JSON punctuation and multi-byte characters give the same
// merged events and result however they are cut. Also: no text is ever swallowed.
#include <gtest/gtest.h>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

using testing::expect_split_invariant;
using testing::run_chunks;
using testing::run_whole;

const std::vector<std::string> kFamilies = {"qwen3",    "qwen3-coder", "qwen35",  "hermes", "llama3",
                                            "mistral",  "deepseek",    "gpt-oss", "none"};

// Pieces a random output is built from: whole and partial markers of every family,
// JSON punctuation, whitespace, and 2-, 3- and 4-byte characters.
const std::vector<std::string> kPieces = {
    "<think>", "</think>", "<thi", "</th", "<tool_call>", "</tool_call>", "<tool", "<function=f>",
    "</function>", "<parameter=p>", "</parameter>", "<|python_tag|>", "[TOOL_CALLS]", "[ARGS]",
    "[TOOL_", "[THINK]", "[/THINK]", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>", "<｜tool", "<|channel|>",
    "<|message|>", "<|end|>", "<|call|>", "<|start|>", "analysis", "final", "commentary",
    " to=functions.f", "<|", "{", "}", "[", "]", "\"", "\\", ":", ",", "\"name\"", "\"arguments\"",
    "\"parameters\"", "\"f\"", "1", "x", "ok", " ", "\n", "\n\n", "é", "日本", "🙂", "```json\n", "```"};

std::string random_text(Rng& rng, int num_pieces) {
  std::string s;
  for (int i = 0; i < num_pieces; ++i) s += kPieces[rng.below(static_cast<uint32_t>(kPieces.size()))];
  return s;
}

std::vector<ParserOptions> option_variants() {
  std::vector<ParserOptions> variants(3);
  variants[1].reasoning = ReasoningMode::kOptional;
  variants[2].reasoning = ReasoningMode::kStartsOpen;
  return variants;
}

TEST(SplitInvariance, RandomSoupsEveryFamily) {
  Rng rng(20261125);
  for (const std::string& family : kFamilies) {
    for (const ParserOptions& options : option_variants()) {
      for (int trial = 0; trial < 40; ++trial) {
        const std::string text = random_text(rng, 4 + static_cast<int>(rng.below(14)));
        SCOPED_TRACE(family + " reasoning=" + std::to_string(static_cast<int>(options.reasoning)) +
                     " text=" + ::testing::PrintToString(text));
        expect_split_invariant(family, options, text, rng.next_u64());
        if (HasFailure()) return;
      }
    }
  }
}

// Raw bytes, invalid UTF-8 included (stray continuation bytes, truncated sequences): no
// crash, and still the same result for every chunking.
TEST(SplitInvariance, RandomBytes) {
  Rng rng(31337);
  const std::string alphabet = std::string("<>{}[]|\"\\/ \nta_") + "\x80\xbf\xc3\xe6\xf0\xef\xbd\x9c";
  for (const std::string& family : kFamilies) {
    for (int trial = 0; trial < 25; ++trial) {
      std::string text = random_text(rng, 2);
      const uint32_t n = 5 + rng.below(40);
      for (uint32_t i = 0; i < n; ++i) text += alphabet[rng.below(static_cast<uint32_t>(alphabet.size()))];
      text += random_text(rng, 2);
      SCOPED_TRACE(family + " text=" + ::testing::PrintToString(text));
      ParserOptions o;
      o.reasoning = trial % 2 ? ReasoningMode::kOptional : ReasoningMode::kNone;
      expect_split_invariant(family, o, text, rng.next_u64());
      if (HasFailure()) return;
    }
  }
}

// Wellformed calls embedded among random pieces: the calls survive any chunking too.
TEST(SplitInvariance, CallsAmongNoise) {
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"qwen3", "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"s\": \"}{\\\"\"}}\n</tool_call>"},
      {"qwen3-coder", "<tool_call>\n<function=f>\n<parameter=p>\n日本 {x}\n</parameter>\n</function>\n</tool_call>"},
      {"mistral", "[TOOL_CALLS]f[ARGS]{\"a\": [1, \"]\"]}"},
      {"deepseek", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
      {"gpt-oss", "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\":\"é\"}<|call|>"},
  };
  Rng rng(7);
  for (const auto& [family, call] : calls) {
    for (int trial = 0; trial < 30; ++trial) {
      const std::string text = random_text(rng, 1 + static_cast<int>(rng.below(4))) + call +
                               random_text(rng, static_cast<int>(rng.below(4)));
      SCOPED_TRACE(family + " text=" + ::testing::PrintToString(text));
      expect_split_invariant(family, {}, text, rng.next_u64());
      if (HasFailure()) return;
    }
  }
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n')) --e;
  return std::string(s.substr(b, e - b));
}

// With reasoning off, a stream that yields no tool call comes back whole as content
// (up to the whitespace trimmed at its two ends): nothing that merely looks like a marker
// or a broken call is ever dropped.
TEST(NothingSwallowed, NoCallMeansAllContent) {
  Rng rng(99);
  for (const std::string& family : kFamilies) {
    if (family == "gpt-oss") continue;  // harmony headers are consumed by design
    int checked = 0;
    for (int trial = 0; trial < 400; ++trial) {
      const std::string text = random_text(rng, 2 + static_cast<int>(rng.below(12)));
      std::vector<size_t> cuts;
      for (size_t at = 1 + rng.below(5); at < text.size(); at += 1 + rng.below(5)) cuts.push_back(at);
      const testing::Run run = run_chunks(family, {}, text, cuts);
      if (!run.result.tool_calls.empty()) continue;
      ++checked;
      ASSERT_EQ(run.result.content, trim(text)) << family << " text=" << ::testing::PrintToString(text);
      EXPECT_EQ(run.result.reasoning_content, "");
    }
    EXPECT_GT(checked, 100) << family;
  }
}

TEST(SplitInvariance, LongCallInTinyChunks) {
  // A 20 KB file body in one XML call, fed 3 bytes at a time: one call, exact value.
  std::string body;
  for (int i = 0; i < 800; ++i) body += "line " + std::to_string(i) + " { \"q\": '}' } 日本\n";
  const std::string text = "Writing.\n<tool_call>\n<function=write_file>\n<parameter=content>\n" +
                           body + "\n</parameter>\n</function>\n</tool_call>";
  std::vector<size_t> cuts;
  for (size_t at = 3; at < text.size(); at += 3) cuts.push_back(at);
  const testing::Run run = run_chunks("qwen3-coder", {}, text, cuts);
  ASSERT_EQ(run.result.tool_calls.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(run.result.tool_calls[0].arguments)["content"], body);
  EXPECT_EQ(run.result.content, "Writing.");
  testing::expect_same(run_whole("qwen3-coder", {}, text), run, "3-byte chunks");
}

// 1 MB through every family in 4-byte chunks: each chunk costs work proportional to the
// chunk (plus marker lengths), not to the text so far. Quadratic work here would take minutes.
TEST(SplitInvariance, LongStreamsStayLinear) {
  std::string para;
  for (int i = 0; i < 200; ++i) para += "word<" + std::to_string(i) + "> {x} [y] 日本 ";
  std::string text = "<think>";
  while (text.size() < (1u << 19)) text += para;
  text += "</think>";
  while (text.size() < (1u << 20)) text += para;
  for (const std::string& family : kFamilies) {
    ParserOptions o;
    o.reasoning = ReasoningMode::kOptional;
    auto parser = testing::make(family, o);
    std::vector<ParseEvent> events;
    size_t num_text = 0;
    for (size_t at = 0; at < text.size(); at += 4) {
      parser->feed(std::string_view(text).substr(at, 4), &events);
      num_text += events.size();
      events.clear();
    }
    parser->finish(&events);
    EXPECT_GT(num_text, 100000u) << family;  // text streams out as it comes
    EXPECT_GT(parser->result().content.size(), 400000u) << family;
  }
}

}  // namespace
}  // namespace strata::chat
