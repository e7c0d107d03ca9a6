// The two streaming parsers behind make_output_parser: the marker parser (a reasoning block,
// then content with tool-call blocks of one ToolCallFormat) and the gpt-oss harmony parser.
// Internal to strata_chat.
#pragma once

#include <memory>

#include "chat/parser.h"
#include "chat/tool_call_format.h"

namespace strata::chat::detail {

// format may be null: content only.
std::unique_ptr<OutputParser> make_marker_parser(const ParserOptions& options,
                                                 ReasoningMarkers markers,
                                                 std::unique_ptr<ToolCallFormat> format);

std::unique_ptr<OutputParser> make_harmony_parser(const ParserOptions& options);

}  // namespace strata::chat::detail
