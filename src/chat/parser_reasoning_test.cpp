// Reasoning split: <think> blocks that the output opens, that the prompt opened, disabled
// thinking, custom markers, and text that only looks like a marker.
#include <gtest/gtest.h>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

using testing::expect_split_invariant;
using testing::parse;

ParserOptions reasoning(ReasoningMode mode) {
  ParserOptions o;
  o.reasoning = mode;
  return o;
}

TEST(Reasoning, Qwen3BlockAtStart) {
  const auto o = reasoning(ReasoningMode::kOptional);
  const std::string text = "<think>\nThe user wants 2+2.\nThat is 4.\n</think>\n\nThe answer is 4.";
  const ParseResult r = parse("qwen3", text, o);
  EXPECT_EQ(r.reasoning_content, "The user wants 2+2.\nThat is 4.");
  EXPECT_EQ(r.content, "The answer is 4.");
  EXPECT_TRUE(r.tool_calls.empty());
  expect_split_invariant("qwen3", o, text);
}

TEST(Reasoning, Qwen3EmptyBlockAndNoBlock) {
  const auto o = reasoning(ReasoningMode::kOptional);
  ParseResult r = parse("qwen3", "<think>\n\n</think>\n\nHello!", o);
  EXPECT_EQ(r.reasoning_content, "");
  EXPECT_EQ(r.content, "Hello!");
  r = parse("qwen3", "  Hello, no thinking here.", o);
  EXPECT_EQ(r.reasoning_content, "");
  EXPECT_EQ(r.content, "Hello, no thinking here.");
  expect_split_invariant("qwen3", o, "<think>\n\n</think>\n\nHello!");
}

TEST(Reasoning, UnterminatedBlockIsAllReasoning) {
  const auto o = reasoning(ReasoningMode::kOptional);
  const ParseResult r = parse("qwen3", "<think>\nstill weighing options </th", o);
  EXPECT_EQ(r.reasoning_content, "still weighing options </th");
  EXPECT_EQ(r.content, "");
  expect_split_invariant("qwen3", o, "<think>\nstill weighing options </th");
}

TEST(Reasoning, StartsOpenInPrompt) {
  // DeepSeek-R1 and Qwen3.5 templates end the prompt with "<think>\n".
  const auto o = reasoning(ReasoningMode::kStartsOpen);
  const std::string text = "Okay, check the file first.\n</think>\n\nI'll read `main.cpp`.";
  ParseResult r = parse("deepseek", text, o);
  EXPECT_EQ(r.reasoning_content, "Okay, check the file first.");
  EXPECT_EQ(r.content, "I'll read `main.cpp`.");
  expect_split_invariant("deepseek", o, text);
  // A model that writes the open marker again anyway.
  r = parse("qwen35", "<think>\nhmm\n</think>\nyes", o);
  EXPECT_EQ(r.reasoning_content, "hmm");
  EXPECT_EQ(r.content, "yes");
  // Cut off by max_tokens before closing.
  r = parse("qwen35", "Thinking about <b>tags</b> and more", o);
  EXPECT_EQ(r.reasoning_content, "Thinking about <b>tags</b> and more");
  EXPECT_EQ(r.content, "");
}

TEST(Reasoning, DisabledKeepsMarkersAsContent) {
  const ParserOptions o;  // ReasoningMode::kNone
  const ParseResult r = parse("qwen3", "<think>a</think>b", o);
  EXPECT_EQ(r.reasoning_content, "");
  EXPECT_EQ(r.content, "<think>a</think>b");
  expect_split_invariant("qwen3", o, "<think>a</think>b");
}

TEST(Reasoning, LookAlikesAreNeverSwallowed) {
  const auto o = reasoning(ReasoningMode::kOptional);
  ParseResult r = parse("qwen3", "<thinking>x</thinking> ok", o);
  EXPECT_EQ(r.reasoning_content, "");
  EXPECT_EQ(r.content, "<thinking>x</thinking> ok");
  // Only the start of the output may open the block.
  r = parse("qwen3", "Wrap it in <think></think> tags, like `<think>`.", o);
  EXPECT_EQ(r.content, "Wrap it in <think></think> tags, like `<think>`.");
  EXPECT_EQ(r.reasoning_content, "");
  // A prefix of the marker at the very end is text once the stream ends.
  r = parse("qwen3", "<thi", o);
  EXPECT_EQ(r.content, "<thi");
  expect_split_invariant("qwen3", o, "<thinking>x</thinking> ok");
  expect_split_invariant("qwen3", o, "<thi");
}

TEST(Reasoning, CustomMarkers) {
  ParserOptions o = reasoning(ReasoningMode::kOptional);
  o.markers = ReasoningMarkers{"<seed:think>", "</seed:think>"};
  const std::string text = "<seed:think>plan: grep</seed:think>Running grep.";
  const ParseResult r = parse("none", text, o);
  EXPECT_EQ(r.reasoning_content, "plan: grep");
  EXPECT_EQ(r.content, "Running grep.");
  expect_split_invariant("none", o, text);
}

TEST(Reasoning, MistralThinkPreset) {
  const auto o = reasoning(ReasoningMode::kOptional);
  const ParseResult r = parse("mistral", "[THINK]Short plan.[/THINK]Here it is.", o);
  EXPECT_EQ(r.reasoning_content, "Short plan.");
  EXPECT_EQ(r.content, "Here it is.");
}

TEST(Reasoning, Utf8SplitAnywhere) {
  const auto o = reasoning(ReasoningMode::kOptional);
  const std::string text = "<think>日本語の推論 é</think>\n答え🙂 done";
  const ParseResult r = parse("qwen3", text, o);
  EXPECT_EQ(r.reasoning_content, "日本語の推論 é");
  EXPECT_EQ(r.content, "答え🙂 done");
  expect_split_invariant("qwen3", o, text);
}

TEST(Reasoning, WhitespaceInsideContentIsKept) {
  const ParserOptions o;
  const std::string text = "line one\n\n  indented\n";
  const ParseResult r = parse("none", text, o);
  EXPECT_EQ(r.content, "line one\n\n  indented");  // only the trailing run is trimmed
  expect_split_invariant("none", o, text);
}

TEST(Reasoning, ModeFromRenderedPrompt) {
  const ReasoningMarkers think;
  // Qwen3.5 with thinking, DeepSeek-R1: the generation prompt opens the block.
  EXPECT_EQ(reasoning_mode_from_prompt("<|im_start|>assistant\n<think>\n", think),
            ReasoningMode::kStartsOpen);
  // Qwen3.5 with enable_thinking=false: an empty block closes it.
  EXPECT_EQ(reasoning_mode_from_prompt("<|im_start|>assistant\n<think>\n\n</think>\n\n", think),
            ReasoningMode::kNone);
  // Qwen3: the model decides.
  EXPECT_EQ(reasoning_mode_from_prompt("<|im_start|>assistant\n", think), ReasoningMode::kOptional);
}

TEST(Factory, FamiliesAndNames) {
  EXPECT_TRUE(make_output_parser("qwen3-coder", {}).is_ok());
  const auto bad = make_output_parser("gpt-5", {});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(output_parser_family_for("Qwen3-Coder-30B-A3B-Instruct"), "qwen3-coder");
  EXPECT_EQ(output_parser_family_for("qwen3"), "qwen3");
  EXPECT_EQ(output_parser_family_for("Qwen3.5-4B"), "qwen35");
  EXPECT_EQ(output_parser_family_for("deepseek-ai-DeepSeek-R1-Distill-Llama-8B"), "deepseek");
  EXPECT_EQ(output_parser_family_for("meta-llama-Llama-3.1-8B-Instruct"), "llama3");
  EXPECT_EQ(output_parser_family_for("unsloth-mistral-Devstral-Small-2507"), "mistral");
  EXPECT_EQ(output_parser_family_for("openai-gpt-oss-120b"), "gpt-oss");
  EXPECT_EQ(output_parser_family_for("Qwen-Qwen2.5-7B-Instruct"), "hermes");
  EXPECT_EQ(output_parser_family_for("google-gemma-2-2b-it"), "none");
}

}  // namespace
}  // namespace strata::chat
