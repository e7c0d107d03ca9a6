// make_output_parser: picks the streaming parser and tool-call format for a model family.
#include "chat/parser.h"

#include <algorithm>
#include <cctype>

#include "chat/parser_stream.h"
#include "chat/tool_call_format.h"

namespace strata::chat {

const char* parse_event_kind_name(ParseEventKind kind) {
  switch (kind) {
    case ParseEventKind::kText: return "text";
    case ParseEventKind::kReasoning: return "reasoning";
    case ParseEventKind::kToolCallStart: return "tool_call_start";
    case ParseEventKind::kToolCallArgs: return "tool_call_args";
    case ParseEventKind::kToolCallEnd: return "tool_call_end";
  }
  return "?";
}

Result<std::unique_ptr<OutputParser>> make_output_parser(std::string_view family,
                                                         const ParserOptions& options) {
  if (family == "gpt-oss") return detail::make_harmony_parser(options);
  ReasoningMarkers markers = options.markers.value_or(ReasoningMarkers{});
  std::unique_ptr<detail::ToolCallFormat> format;
  if (family == "qwen3" || family == "qwen3-coder" || family == "qwen35" || family == "hermes") {
    format = detail::make_qwen_format(detail::tool_schemas_from(options.tools));
  } else if (family == "llama3") {
    format = detail::make_llama3_format();
  } else if (family == "mistral") {
    if (!options.markers) markers = ReasoningMarkers{"[THINK]", "[/THINK]"};
    format = detail::make_mistral_format();
  } else if (family == "deepseek") {
    format = detail::make_deepseek_format();
  } else if (family != "none") {
    return error(ErrorCode::kUnsupported,
                 "unknown output parser family '" + std::string(family) +
                     "'; use one of qwen3, qwen3-coder, qwen35, hermes, llama3, mistral, "
                     "deepseek, gpt-oss, none");
  }
  if (markers.open.empty() || markers.close.empty()) {
    return error(ErrorCode::kInvalidArgument, "reasoning markers must not be empty");
  }
  return detail::make_marker_parser(options, std::move(markers), std::move(format));
}

std::string output_parser_family_for(std::string_view model_name) {
  std::string name(model_name);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto has = [&](std::initializer_list<std::string_view> parts) {
    return std::any_of(parts.begin(), parts.end(), [&](std::string_view p) {
      return name.find(p) != std::string::npos;
    });
  };
  // Order matters: "deepseek-r1-distill-llama" is DeepSeek, "qwen3-coder" is not "qwen3".
  if (has({"gpt-oss", "gpt_oss", "gptoss"})) return "gpt-oss";
  if (has({"deepseek"})) return "deepseek";
  if (has({"qwen3-coder", "qwen3_coder", "qwen3coder"})) return "qwen3-coder";
  if (has({"qwen3.5", "qwen3.6", "qwen35", "qwen3_5", "qwen3next", "qwen3_next"})) {
    return "qwen35";
  }
  if (has({"qwen3", "qwq"})) return "qwen3";
  if (has({"qwen2", "hermes"})) return "hermes";
  if (has({"mistral", "ministral", "devstral", "magistral", "mixtral"})) return "mistral";
  if (has({"llama-3", "llama3", "llama-3.", "llama_3"})) return "llama3";
  return "none";
}

ReasoningMode reasoning_mode_from_prompt(std::string_view prompt, const ReasoningMarkers& markers) {
  while (!prompt.empty() && (prompt.back() == ' ' || prompt.back() == '\n' ||
                             prompt.back() == '\t' || prompt.back() == '\r')) {
    prompt.remove_suffix(1);
  }
  if (!markers.open.empty() && prompt.ends_with(markers.open)) return ReasoningMode::kStartsOpen;
  if (!markers.close.empty() && prompt.ends_with(markers.close)) return ReasoningMode::kNone;
  return ReasoningMode::kOptional;
}

ParseResult parse_output(OutputParser& parser, std::string_view text) {
  std::vector<ParseEvent> events;
  parser.feed(text, &events);
  parser.finish(&events);
  return parser.result();
}

}  // namespace strata::chat
