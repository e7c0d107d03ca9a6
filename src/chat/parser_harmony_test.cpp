// gpt-oss harmony channels: analysis -> reasoning, final/commentary -> content,
// commentary to=functions.NAME -> tool calls; stop tokens cut off; broken calls.
#include <gtest/gtest.h>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

using testing::expect_split_invariant;
using testing::parse;

TEST(Harmony, AnalysisThenFinal) {
  const std::string text =
      "<|channel|>analysis<|message|>User greets. Reply briefly.<|end|>"
      "<|start|>assistant<|channel|>final<|message|>Hello! How can I help? 😊<|return|>";
  const ParseResult r = parse("gpt-oss", text);
  EXPECT_EQ(r.reasoning_content, "User greets. Reply briefly.");
  EXPECT_EQ(r.content, "Hello! How can I help? 😊");
  EXPECT_TRUE(r.tool_calls.empty());
  expect_split_invariant("gpt-oss", {}, text);
}

TEST(Harmony, SeveralMessagesPerChannelAreParagraphs) {
  const std::string text =
      "<|channel|>analysis<|message|>First thought.<|end|>"
      "<|start|>assistant<|channel|>analysis<|message|>Second thought.<|end|>"
      "<|start|>assistant<|channel|>commentary<|message|>Working on it.<|end|>"
      "<|start|>assistant<|channel|>final<|message|>Done.<|return|>";
  const ParseResult r = parse("gpt-oss", text);
  EXPECT_EQ(r.reasoning_content, "First thought.\n\nSecond thought.");
  EXPECT_EQ(r.content, "Working on it.\n\nDone.");
  expect_split_invariant("gpt-oss", {}, text);
}

TEST(Harmony, ToolCallAfterAnalysis) {
  const std::string text =
      "<|channel|>analysis<|message|>Need the weather; call the tool.<|end|>"
      "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
      "<|message|>{\"city\":\"Paris\",\"opts\":{\"unit\":\"c\",\"note\":\"}\\\"\"}}<|call|>";
  const ParseResult r = parse("gpt-oss", text);
  EXPECT_EQ(r.reasoning_content, "Need the weather; call the tool.");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris","opts":{"unit":"c","note":"}\""}})");
  EXPECT_FALSE(r.incomplete_tool_call);
  expect_split_invariant("gpt-oss", {}, text);
}

TEST(Harmony, StopTokensCutOffByTheEngine) {
  // <|return|> and <|call|> end generation; the engine may not pass them on.
  ParseResult r = parse("gpt-oss", "<|channel|>final<|message|>Hi there");
  EXPECT_EQ(r.content, "Hi there");
  const std::string call =
      "<|channel|>commentary to=functions.ls <|constrain|>json<|message|>{\"path\": \".\"}";
  r = parse("gpt-oss", call);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "ls");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"path":"."})");
  expect_split_invariant("gpt-oss", {}, call);
}

TEST(Harmony, RecipientBeforeChannelAndPreamble) {
  const std::string text =
      "<|channel|>commentary<|message|>Let me look at the repo.<|end|>"
      "<|start|>assistant to=functions.list_dir<|channel|>commentary json<|message|>{\"path\":\"src\"}"
      "<|call|>";
  const ParseResult r = parse("gpt-oss", text);
  EXPECT_EQ(r.content, "Let me look at the repo.");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "list_dir");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"path":"src"})");
  expect_split_invariant("gpt-oss", {}, text);
}

TEST(Harmony, MalformedAndIncompleteCalls) {
  const std::string bad =
      "<|channel|>commentary to=functions.ls <|constrain|>json<|message|>{path: .}<|call|>";
  ParseResult r = parse("gpt-oss", bad);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_EQ(r.content, bad);
  expect_split_invariant("gpt-oss", {}, bad);
  const std::string cut =
      "<|channel|>commentary to=functions.ls <|constrain|>json<|message|>{\"path\": \"sr";
  r = parse("gpt-oss", cut);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_TRUE(r.incomplete_tool_call);
  EXPECT_EQ(r.content, cut);
  expect_split_invariant("gpt-oss", {}, cut);
}

TEST(Harmony, StrayTextAndLookAlikes) {
  ParseResult r = parse("gpt-oss", "Hello without any header.");
  EXPECT_EQ(r.content, "Hello without any header.");
  const std::string text = "<|channel|>final<|message|>Tokens like <|chan and <|end are text.";
  r = parse("gpt-oss", text);
  EXPECT_EQ(r.content, "Tokens like <|chan and <|end are text.");
  expect_split_invariant("gpt-oss", {}, text);
  expect_split_invariant("gpt-oss", {}, "Hi <|start|>assistant<|channel|>final<|message|>ok");
}

}  // namespace
}  // namespace strata::chat
