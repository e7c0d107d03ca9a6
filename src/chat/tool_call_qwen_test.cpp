// Qwen family tool calls: Hermes/Qwen3 JSON in <tool_call>, and the Qwen3-Coder / Qwen3.5
// XML form with schema-typed parameters; realistic outputs and broken ones.
#include <gtest/gtest.h>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

using testing::expect_split_invariant;
using testing::parse;

nlohmann::json args_of(const ToolCall& call) { return nlohmann::json::parse(call.arguments); }

TEST(QwenJson, SingleCall) {
  const std::string text =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
  const ParseResult r = parse("qwen3", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_TRUE(r.tool_calls[0].id.starts_with("call_"));
  EXPECT_EQ(r.tool_calls[0].id.size(), 21u);
  EXPECT_EQ(r.content, "");
  EXPECT_FALSE(r.incomplete_tool_call);
  EXPECT_FALSE(r.malformed_tool_call);
  expect_split_invariant("qwen3", {}, text);
}

TEST(QwenJson, ReasoningTextAndTwoCalls) {
  ParserOptions o;
  o.reasoning = ReasoningMode::kOptional;
  o.call_id_seed = 42;
  const std::string text =
      "<think>\nTwo cities, two calls.\n</think>\n\nLet me check both.\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\", \"unit\": \"c\"}}\n"
      "</tool_call>";
  const ParseResult r = parse("qwen3", text, o);
  EXPECT_EQ(r.reasoning_content, "Two cities, two calls.");
  EXPECT_EQ(r.content, "Let me check both.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"city":"東京","unit":"c"})");
  EXPECT_NE(r.tool_calls[0].id, r.tool_calls[1].id);
  expect_split_invariant("qwen3", o, text);
}

TEST(QwenJson, EventOrder) {
  auto parser = testing::make("qwen3", {});
  std::vector<ParseEvent> events;
  parser->feed("Checking.\n<tool_call>\n{\"name\": \"ls\", \"arguments\": {}}\n</tool_call>\nDone.",
               &events);
  parser->finish(&events);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].kind, ParseEventKind::kText);
  EXPECT_EQ(events[0].text, "Checking.");
  EXPECT_EQ(events[1].kind, ParseEventKind::kToolCallStart);
  EXPECT_EQ(events[1].name, "ls");
  EXPECT_EQ(events[1].tool_call_idx, 0);
  EXPECT_EQ(events[2].kind, ParseEventKind::kToolCallArgs);
  EXPECT_EQ(events[2].text, "{}");
  EXPECT_EQ(events[3].kind, ParseEventKind::kToolCallEnd);
  EXPECT_EQ(events[4].kind, ParseEventKind::kText);
  EXPECT_EQ(events[4].text, "\nDone.");
  EXPECT_EQ(parser->result().content, "Checking.\nDone.");
}

TEST(QwenJson, NestedBracesAndEscapedQuotesInStrings) {
  const std::string args =
      R"({"path": "a.cpp", "content": "int main() { puts(\"}\\\"{\"); }\n", )"
      R"("opts": {"a": [1, {"b": "}]"}], "note": "</tool_call> inside a string"}})";
  const std::string text = "<tool_call>\n{\"name\": \"write_file\", \"arguments\": " + args +
                           "}\n</tool_call>\nWrote it.";
  const ParseResult r = parse("hermes", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(args_of(r.tool_calls[0]), nlohmann::json::parse(args));
  EXPECT_EQ(args_of(r.tool_calls[0])["content"], "int main() { puts(\"}\\\"{\"); }\n");
  EXPECT_EQ(r.content, "Wrote it.");
  EXPECT_FALSE(r.malformed_tool_call);
  expect_split_invariant("hermes", {}, text);
}

TEST(QwenJson, ArgumentsAsStringAndParametersKey) {
  ParseResult r = parse("hermes",
                        "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"x":1})");
  r = parse("hermes", "<tool_call>{\"name\": \"f\", \"parameters\": {\"y\": [true]}}</tool_call>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"y":[true]})");
}

TEST(QwenJson, LookAlikeMarkersStayText) {
  const std::string text = "Use <tools> and <tool_result> tags; <tool_call is not a call, nor <tool_";
  const ParseResult r = parse("qwen3", text);
  EXPECT_EQ(r.content, text);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_FALSE(r.incomplete_tool_call);
  EXPECT_FALSE(r.malformed_tool_call);
  expect_split_invariant("qwen3", {}, text);
}

TEST(QwenJson, ProseMentionOfTheTagIsReleasedAtOnce) {
  auto parser = testing::make("qwen3", {});
  std::vector<ParseEvent> events;
  parser->feed("Wrap each call in a <tool_call> tag, then", &events);
  ASSERT_EQ(events.size(), 1u);  // not held back until the end of the stream
  EXPECT_EQ(events[0].text, "Wrap each call in a <tool_call> tag, then");
  parser->feed(" close it.", &events);
  parser->finish(&events);
  EXPECT_EQ(parser->result().content, "Wrap each call in a <tool_call> tag, then close it.");
  EXPECT_FALSE(parser->result().malformed_tool_call);
  EXPECT_FALSE(parser->result().incomplete_tool_call);
  expect_split_invariant("qwen3", {}, "Wrap each call in a <tool_call> tag, then close it.");
}

TEST(QwenJson, UnterminatedCallComesBackAsText) {
  const std::string text = "Sure.\n<tool_call>\n{\"name\": \"ls\", \"arguments\": {\"path\": \"/tm";
  const ParseResult r = parse("qwen3", text);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_TRUE(r.incomplete_tool_call);
  EXPECT_EQ(r.content, text);
  expect_split_invariant("qwen3", {}, text);
}

TEST(QwenJson, MalformedJsonComesBackAsText) {
  const std::string bad = "<tool_call>\n{\"name\": \"ls\", \"arguments\": {'path': 1}}\n</tool_call>";
  const ParseResult r = parse("qwen3", bad + "\nafter");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_FALSE(r.incomplete_tool_call);
  EXPECT_EQ(r.content, bad + "\nafter");
  expect_split_invariant("qwen3", {}, bad + "\nafter");
}

TEST(QwenJson, MalformedCallDoesNotHideTheNextOne) {
  const std::string bad = "<tool_call>{\"arguments\": {}}</tool_call>";  // no name
  const std::string good = "<tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call>";
  ParseResult r = parse("qwen3", bad + "\n" + good);
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_EQ(r.content, bad);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "b");
  // Unbalanced braces: only at the end of the stream can this be called broken.
  const std::string unbalanced = "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}</tool_call>";
  r = parse("qwen3", unbalanced + "\n" + good);
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_EQ(r.content, unbalanced);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "b");
  expect_split_invariant("qwen3", {}, unbalanced + "\n" + good);
}

TEST(QwenJson, ToolParsingOff) {
  ParserOptions o;
  o.parse_tool_calls = false;
  const std::string text = "<tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call>";
  const ParseResult r = parse("qwen3", text, o);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.content, text);
}

const char* kCoderCall =
    "<tool_call>\n<function=write_file>\n<parameter=path>\nsrc/main.cpp\n</parameter>\n"
    "<parameter=content>\n#include <cstdio>\nint main() {\n  printf(\"hi\\n\");\n}\n</parameter>\n"
    "</function>\n</tool_call>";

TEST(QwenXml, CoderCallWithCodeValue) {
  const ParseResult r = parse("qwen3-coder", std::string("I'll create the file.\n\n") + kCoderCall);
  EXPECT_EQ(r.content, "I'll create the file.");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "write_file");
  EXPECT_EQ(r.tool_calls[0].arguments,
            R"({"path":"src/main.cpp","content":"#include <cstdio>\nint main() {\n  printf(\"hi\\n\");\n}"})");
  expect_split_invariant("qwen3-coder", {}, kCoderCall);
}

TEST(QwenXml, ValuesTypedBySchema) {
  ParserOptions o;
  o.tools = nlohmann::json::parse(R"([{"type": "function", "function": {"name": "run_tests",
      "parameters": {"type": "object", "properties": {
        "count": {"type": "integer"}, "verbose": {"type": "boolean"},
        "filter": {"type": "string"}, "options": {"type": "object"},
        "ratio": {"type": "number"}, "tags": {"type": "array"},
        "limit": {"type": ["integer", "null"]}, "bad_int": {"type": "integer"}}}}}])");
  const std::string text =
      "<tool_call>\n<function=run_tests>\n"
      "<parameter=count>\n3\n</parameter>\n<parameter=verbose>\ntrue\n</parameter>\n"
      "<parameter=filter>\n123\n</parameter>\n<parameter=options>\n{\"a\": {\"b\": 1}}\n</parameter>\n"
      "<parameter=ratio>\n0.5\n</parameter>\n<parameter=tags>\n[\"x\", \"y\"]\n</parameter>\n"
      "<parameter=limit>\nnull\n</parameter>\n<parameter=bad_int>\nabc\n</parameter>\n"
      "<parameter=unknown>\n7\n</parameter>\n"
      "</function>\n</tool_call>";
  const ParseResult r = parse("qwen35", text, o);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments,
            R"({"count":3,"verbose":true,"filter":"123","options":{"a":{"b":1}},"ratio":0.5,)"
            R"("tags":["x","y"],"limit":null,"bad_int":"abc","unknown":7})");
}

TEST(QwenXml, ValuesWithoutSchema) {
  const std::string text =
      "<tool_call>\n<function=f>\n<parameter=n>\n42\n</parameter>\n<parameter=s>\nhello world\n"
      "</parameter>\n<parameter=b>\nTrue\n</parameter>\n<parameter=o>\n{\"k\": [1]}\n</parameter>\n"
      "<parameter=multi>\nline 1\nline 2\n</parameter>\n</function>\n</tool_call>";
  const ParseResult r = parse("qwen3-coder", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments,
            R"({"n":42,"s":"hello world","b":true,"o":{"k":[1]},"multi":"line 1\nline 2"})");
}

TEST(QwenXml, Qwen35ReasoningThenTwoCalls) {
  ParserOptions o;
  o.reasoning = ReasoningMode::kStartsOpen;
  const std::string text =
      "I should list then read.\n</think>\n\n"
      "<tool_call>\n<function=list_dir>\n<parameter=path>\n.\n</parameter>\n</function>\n</tool_call>\n"
      "<tool_call>\n<function=read_file>\n<parameter=path>\nREADME.md\n</parameter>\n</function>\n"
      "</tool_call>";
  const ParseResult r = parse("qwen35", text, o);
  EXPECT_EQ(r.reasoning_content, "I should list then read.");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "list_dir");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"path":"."})");
  EXPECT_EQ(r.tool_calls[1].name, "read_file");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"path":"README.md"})");
  expect_split_invariant("qwen35", o, text);
}

TEST(QwenXml, MissingParameterCloseTag) {
  const std::string text =
      "<tool_call>\n<function=edit>\n<parameter=path>\na.py\n<parameter=old>\nx = 1\n</parameter>\n"
      "<parameter=new>\nx = 2\n</function>\n</tool_call>";
  const ParseResult r = parse("qwen3-coder", text);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"path":"a.py","old":"x = 1","new":"x = 2"})");
  EXPECT_FALSE(r.malformed_tool_call);
  expect_split_invariant("qwen3-coder", {}, text);
}

TEST(QwenXml, MalformedAndUnterminated) {
  const std::string bad =
      "<tool_call>\n<function=ls>\n<param=x>1</param>\n</function>\n</tool_call>";
  ParseResult r = parse("qwen3-coder", bad);
  EXPECT_TRUE(r.malformed_tool_call);
  EXPECT_EQ(r.content, bad);
  EXPECT_TRUE(r.tool_calls.empty());
  expect_split_invariant("qwen3-coder", {}, bad);

  const std::string cut = "<tool_call>\n<function=ls>\n<parameter=path>\n./sr";
  r = parse("qwen3-coder", cut);
  EXPECT_TRUE(r.incomplete_tool_call);
  EXPECT_EQ(r.content, cut);
  EXPECT_TRUE(r.tool_calls.empty());
  expect_split_invariant("qwen3-coder", {}, cut);
}

}  // namespace
}  // namespace strata::chat
