// Tool-call block syntaxes that sit inside plain content (Hermes/Qwen JSON and XML,
// Llama 3, Mistral, DeepSeek). The streaming driver (parser_stream.cpp) finds where a block
// opens and asks the format whether the text so far completes it. Internal to strata_chat.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/parser.h"

namespace strata::chat::detail {

struct BlockParse {
  enum class Status {
    kNeedMore,  // not decided yet: the block may still complete
    kCalls,     // `consumed` bytes are tool calls
    kText,      // `consumed` bytes are plain text after all
  };
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  std::vector<ToolCall> calls;  // kCalls; an empty id is filled in by the driver
  bool malformed = false;       // kText: it was meant as a tool call but did not parse

  static BlockParse need_more() { return {}; }
  static BlockParse text(size_t consumed, bool malformed) {
    BlockParse p;
    p.status = Status::kText;
    p.consumed = consumed;
    p.malformed = malformed;
    return p;
  }
};

class ToolCallFormat {
 public:
  virtual ~ToolCallFormat() = default;
  // Markers that open a block anywhere in content.
  virtual const std::vector<std::string>& start_markers() const = 0;
  // True when a block may open with byte c as the first non-space byte of content
  // (Llama 3 writes a bare JSON object as the whole message).
  virtual bool opens_at_content_start(char c) const { return false; }
  // parse() is retried only after one of these arrives (or at the end of the stream), so
  // a long block is not rescanned for every chunk.
  virtual const std::vector<std::string>& completion_hints() const = 0;
  // block: from the block's first byte to the end of what has arrived. A decision must
  // depend only on the bytes it consumes (and the byte after, if it needs one).
  virtual BlockParse parse(std::string_view block, bool at_end) const = 0;
};

// tool name -> its JSON-schema "parameters" object.
using ToolSchemas = std::map<std::string, nlohmann::json, std::less<>>;
ToolSchemas tool_schemas_from(const nlohmann::json& tools);

// `<tool_call>` blocks holding either JSON {"name","arguments"} (Hermes, Qwen2.5/3) or the
// Qwen3-Coder XML form <function=NAME><parameter=P>...; both forms are accepted.
std::unique_ptr<ToolCallFormat> make_qwen_format(ToolSchemas schemas);
std::unique_ptr<ToolCallFormat> make_llama3_format();
std::unique_ptr<ToolCallFormat> make_mistral_format();
std::unique_ptr<ToolCallFormat> make_deepseek_format();

// Shared by the JSON formats: a parsed call object {"name", "arguments"|"parameters"}
// (arguments as an object or as a string holding one). False when it is not one.
bool call_from_json(const nlohmann::ordered_json& value, ToolCall* call);

// Qwen3-Coder XML parameter value -> JSON, typed by the parameter's schema when known.
nlohmann::ordered_json xml_param_value(std::string_view raw, const nlohmann::json* schema);

}  // namespace strata::chat::detail
