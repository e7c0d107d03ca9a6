// Output parsers: split streamed model text into content, reasoning and tool calls,
// incrementally and independently of how the text is cut into chunks.
// Formats: Qwen3/Hermes JSON and Qwen3-Coder XML tool calls, Llama 3.x, Mistral, DeepSeek,
// gpt-oss harmony channels; reasoning blocks with configurable markers.
//
// Contract, for every family:
// - Any chunking of one stream gives the same events once adjacent deltas of one kind are
//   merged, and the same ParseResult (tested exhaustively for short texts).
// - Only a suffix that may still become a marker is withheld; a tool call is held until it
//   closes and then comes out whole (start, one args delta, end), because a call that never
//   closes or does not parse must come back as text and an emitted start cannot be undone.
// - Nothing is dropped except the markers themselves and whitespace at the edges of a
//   section (the start and end of reasoning and of content, and around tool calls).
// - Deltas never split a UTF-8 character when the input is valid UTF-8.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace strata::chat {

enum class ParseEventKind {
  kText,           // text: a content delta
  kReasoning,      // text: a reasoning delta
  kToolCallStart,  // tool_call_idx, id, name
  kToolCallArgs,   // tool_call_idx, text: a fragment of the arguments JSON
  kToolCallEnd,    // tool_call_idx
};

const char* parse_event_kind_name(ParseEventKind kind);

struct ParseEvent {
  ParseEventKind kind = ParseEventKind::kText;
  std::string text;
  int tool_call_idx = -1;
  std::string id;
  std::string name;

  bool operator==(const ParseEvent&) const = default;
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object, as text

  bool operator==(const ToolCall&) const = default;
};

// Everything a finished stream said. content == concatenation of kText deltas, and so on.
struct ParseResult {
  std::string content;
  std::string reasoning_content;
  std::vector<ToolCall> tool_calls;
  // A tool call began but the stream ended before it closed: its text is in `content`.
  bool incomplete_tool_call = false;
  // A tool call closed but did not parse (bad JSON, no name): its text is in `content`.
  bool malformed_tool_call = false;

  bool operator==(const ParseResult&) const = default;
};

// Where reasoning sits in the output.
enum class ReasoningMode {
  kNone,        // no reasoning block is recognised; `<think>` is plain content
  kOptional,    // the output may begin with the open marker (Qwen3 with enable_thinking)
  kStartsOpen,  // the prompt opened the block: output begins inside reasoning (R1, Qwen3.5)
};

struct ReasoningMarkers {
  std::string open = "<think>";
  std::string close = "</think>";
};

struct ParserOptions {
  ReasoningMode reasoning = ReasoningMode::kNone;
  // Unset: the family's preset (`<think>`/`</think>`; Mistral `[THINK]`/`[/THINK]`).
  // Ignored by gpt-oss, which uses channels.
  std::optional<ReasoningMarkers> markers;
  // When false, tool-call syntax is plain content (the request had no tools).
  bool parse_tool_calls = true;
  // OpenAI-style tool list ([{"type":"function","function":{"name","parameters"}}], bare
  // {"name","parameters"} also accepted). Used to type Qwen3-Coder XML parameter values.
  nlohmann::json tools;
  // Tool call ids are "call_" + 16 alphanumerics drawn from this seed, so a test can fix
  // them; the server passes a random seed. Ids written by the model (Mistral) win.
  uint64_t call_id_seed = 0;
};

class OutputParser {
 public:
  virtual ~OutputParser() = default;
  // Appends the events that `chunk` decides to *events. A suffix that may still turn out
  // to be a marker (or an unfinished UTF-8 character) is withheld until the next chunk.
  virtual void feed(std::string_view chunk, std::vector<ParseEvent>* events) = 0;
  // End of stream: releases everything withheld.
  virtual void finish(std::vector<ParseEvent>* events) = 0;
  // Accumulated so far; complete after finish().
  const ParseResult& result() const { return result_; }

 protected:
  ParseResult result_;
};

// family: "qwen3", "qwen3-coder", "qwen35", "hermes", "llama3", "mistral", "deepseek",
// "gpt-oss" or "none" (plain text, reasoning only).
Result<std::unique_ptr<OutputParser>> make_output_parser(std::string_view family,
                                                         const ParserOptions& options);

// The family for a GGUF `general.architecture` or a template's name, or "none".
std::string output_parser_family_for(std::string_view model_name);

// How the rendered prompt leaves reasoning for the output: ending in the open marker
// (plus whitespace) -> kStartsOpen (DeepSeek-R1, Qwen3.5 with thinking); ending in the close
// marker -> kNone (thinking disabled by an empty block); otherwise kOptional.
ReasoningMode reasoning_mode_from_prompt(std::string_view prompt, const ReasoningMarkers& markers);

// Convenience: one whole text through a fresh parser.
ParseResult parse_output(OutputParser& parser, std::string_view text);

}  // namespace strata::chat
