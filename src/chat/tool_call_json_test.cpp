// Llama 3.x, Mistral and DeepSeek tool calls: realistic outputs, look-alikes, broken calls.
#include <gtest/gtest.h>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

using testing::expect_split_invariant;
using testing::parse;

// ---- Llama 3.x ------------------------------------------------------------------------

TEST(Llama3, BareJsonMessage) {
  const std::string text = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
  const ParseResult r = parse("llama3", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r.content, "");
  expect_split_invariant("llama3", {}, text);
}

TEST(Llama3, PythonTagAndSeveralCalls) {
  ParseResult r =
      parse("llama3", "<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"C++20 ranges\"}}");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "search");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"q":"C++20 ranges"})");
  const std::string two =
      "{\"name\": \"a\", \"parameters\": {}}\n{\"name\": \"b\", \"parameters\": {\"x\": {\"y\": \"}\"}}}";
  r = parse("llama3", two);
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[1].name, "b");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"x":{"y":"}"}})");
  EXPECT_EQ(r.content, "");
  expect_split_invariant("llama3", {}, two);
}

TEST(Llama3, TextAndPlainJsonStayContent) {
  ParseResult r = parse("llama3", "The weather in Paris is mild.");
  EXPECT_EQ(r.content, "The weather in Paris is mild.");
  EXPECT_TRUE(r.tool_calls.empty());
  r = parse("llama3", "{\"answer\": 42}");  // JSON, but not a call
  EXPECT_EQ(r.content, "{\"answer\": 42}");
  EXPECT_FALSE(r.malformed_tool_call);
  r = parse("llama3", "Here: {\"name\": \"a\", \"parameters\": {}}");  // not the whole message
  EXPECT_EQ(r.content, "Here: {\"name\": \"a\", \"parameters\": {}}");
  EXPECT_TRUE(r.tool_calls.empty());
  r = parse("llama3", "{\"unclosed\": ");
  EXPECT_EQ(r.content, "{\"unclosed\":");  // trailing whitespace of the output is trimmed
  EXPECT_FALSE(r.incomplete_tool_call);
  expect_split_invariant("llama3", {}, "{\"answer\": 42} and more");
}

TEST(Llama3, BrokenCalls) {
  const std::string bad = "{\"name\": \"a\", \"parameters\": {x}}";
  ParseResult r = parse("llama3", bad);
  EXPECT_EQ(r.content, bad);
  EXPECT_TRUE(r.malformed_tool_call);
  const std::string cut = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Par";
  r = parse("llama3", cut);
  EXPECT_EQ(r.content, cut);
  EXPECT_TRUE(r.incomplete_tool_call);
  r = parse("llama3", "<|python_tag|>print(1 + 1)");
  EXPECT_EQ(r.content, "<|python_tag|>print(1 + 1)");
  EXPECT_TRUE(r.malformed_tool_call);
  expect_split_invariant("llama3", {}, cut);
}

// ---- Mistral --------------------------------------------------------------------------

TEST(Mistral, JsonArrayWithIds) {
  const std::string text =
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": "
      "\"abc123XYZ\"}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}, \"id\": "
      "\"def456UVW\"}]";
  const ParseResult r = parse("mistral", text);
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0], (ToolCall{"abc123XYZ", "get_weather", R"({"city":"Paris"})"}));
  EXPECT_EQ(r.tool_calls[1], (ToolCall{"def456UVW", "get_time", R"({"tz":"Europe/Paris"})"}));
  EXPECT_EQ(r.content, "");
  expect_split_invariant("mistral", {}, text);
}

TEST(Mistral, NameArgsForm) {
  const std::string text =
      "Let me check.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}"
      "[TOOL_CALLS]get_time[ARGS]{\"tz\": \"CET\", \"fmt\": \"[%H]\"}";
  const ParseResult r = parse("mistral", text);
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r.tool_calls[1].name, "get_time");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"tz":"CET","fmt":"[%H]"})");
  EXPECT_TRUE(r.tool_calls[0].id.starts_with("call_"));
  expect_split_invariant("mistral", {}, text);
}

TEST(Mistral, CallIdAndReasoning) {
  ParserOptions o;
  o.reasoning = ReasoningMode::kOptional;
  const std::string text = "[THINK]List first.[/THINK]\n[TOOL_CALLS]ls[CALL_ID]a1b2c3d4e[ARGS]{\"path\": \".\"}";
  const ParseResult r = parse("mistral", text, o);
  EXPECT_EQ(r.reasoning_content, "List first.");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0], (ToolCall{"a1b2c3d4e", "ls", R"({"path":"."})"}));
  expect_split_invariant("mistral", o, text);
}

TEST(Mistral, BrokenAndLookAlike) {
  ParseResult r = parse("mistral", "[TOOL_CALLS]not a call at all");
  EXPECT_EQ(r.content, "[TOOL_CALLS]not a call at all");
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_TRUE(r.tool_calls.empty());
  r = parse("mistral", "[TOOL_CALLS][1, 2]");
  EXPECT_EQ(r.content, "[TOOL_CALLS][1, 2]");
  EXPECT_TRUE(r.malformed_tool_call);
  r = parse("mistral", "[TOOL_CALLS]f[ARGS]{\"a\": \"");
  EXPECT_EQ(r.content, "[TOOL_CALLS]f[ARGS]{\"a\": \"");
  EXPECT_TRUE(r.incomplete_tool_call);
  const std::string look = "Arrays like [TOOL_CALL] or [TOOLS] are text; so is [TOOL_";
  r = parse("mistral", look);
  EXPECT_EQ(r.content, look);
  EXPECT_FALSE(r.malformed_tool_call);
  EXPECT_FALSE(r.incomplete_tool_call);
  expect_split_invariant("mistral", {}, look);
  expect_split_invariant("mistral", {}, "[TOOL_CALLS]not a call [x] {y}");
}

// ---- DeepSeek -------------------------------------------------------------------------

TEST(DeepSeek, R1FencedCallsAfterReasoning) {
  ParserOptions o;
  o.reasoning = ReasoningMode::kStartsOpen;
  const std::string text =
      "Need weather and time.\n</think>\n\nChecking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"
      "function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n"
      "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  const ParseResult r = parse("deepseek", text, o);
  EXPECT_EQ(r.reasoning_content, "Need weather and time.");
  EXPECT_EQ(r.content, "Checking.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r.tool_calls[1].name, "get_time");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"tz":"CET"})");
  expect_split_invariant("deepseek", o, text);
}

TEST(DeepSeek, V31Form) {
  const std::string text =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Zürich\"}"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  const ParseResult r = parse("deepseek", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Zürich"})");
  expect_split_invariant("deepseek", {}, text);
}

TEST(DeepSeek, BrokenAndLookAlike) {
  const std::string bad =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather {\"city\": 1}<｜tool▁call▁end｜>"
      "<｜tool▁calls▁end｜>";
  ParseResult r = parse("deepseek", bad + " ok");
  EXPECT_EQ(r.content, bad + " ok");
  EXPECT_TRUE(r.malformed_tool_call);
  const std::string cut =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Par";
  r = parse("deepseek", cut);
  EXPECT_EQ(r.content, cut);
  EXPECT_TRUE(r.incomplete_tool_call);
  EXPECT_TRUE(r.tool_calls.empty());
  // A closed call without the block's end (the original R1 template writes none) counts
  // once the stream has ended.
  const std::string no_block_end =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}"
      "<｜tool▁call▁end｜>";
  r = parse("deepseek", no_block_end);
  EXPECT_FALSE(r.incomplete_tool_call);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  expect_split_invariant("deepseek", {}, no_block_end);
  const std::string look = "A fullwidth bar ｜ and <｜tool▁call▁begin｜> alone, then <｜tool▁";
  r = parse("deepseek", look);
  EXPECT_EQ(r.content, look);
  EXPECT_FALSE(r.incomplete_tool_call);
  expect_split_invariant("deepseek", {}, look);
  expect_split_invariant("deepseek", {}, cut);
}

}  // namespace
}  // namespace strata::chat
