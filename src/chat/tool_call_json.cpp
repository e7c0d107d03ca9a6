// JSON tool-call formats outside the Qwen family: Llama 3.x (a bare {"name", "parameters"}
// message, optionally after <|python_tag|>), Mistral ([TOOL_CALLS][{...}] and
// [TOOL_CALLS]name[ARGS]{...}), DeepSeek V3/R1 and V3.1 (<｜tool▁calls▁begin｜>...).
#include "chat/parser_text.h"
#include "chat/tool_call_format.h"

namespace strata::chat::detail {
namespace {

BlockParse calls_parse(std::vector<ToolCall> calls, size_t consumed) {
  BlockParse parsed;
  parsed.status = BlockParse::Status::kCalls;
  parsed.consumed = consumed;
  parsed.calls = std::move(calls);
  return parsed;
}

// ---- Llama 3.x ----------------------------------------------------------------------

constexpr std::string_view kPythonTag = "<|python_tag|>";

// `{"name"` (or `{"type": "function"`) opens the object: meant as a call, not an answer.
bool looks_like_call(std::string_view s, size_t pos) {
  pos = skip_space(s, pos + 1);
  return starts_with(s, pos, "\"name\"") || starts_with(s, pos, "\"type\"");
}

class Llama3Format final : public ToolCallFormat {
 public:
  const std::vector<std::string>& start_markers() const override { return markers_; }
  bool opens_at_content_start(char c) const override { return c == '{'; }
  const std::vector<std::string>& completion_hints() const override { return hints_; }

  BlockParse parse(std::string_view s, bool at_end) const override {
    const bool tagged = s.starts_with(kPythonTag);
    const size_t pos = skip_space(s, tagged ? kPythonTag.size() : 0);
    if (pos == s.size()) return BlockParse::need_more();
    if (s[pos] != '{') {
      // <|python_tag|> before code for a built-in tool: not a call we can represent.
      return BlockParse::text(kPythonTag.size(), /*malformed=*/true);
    }
    const bool meant = tagged || looks_like_call(s, pos);
    const size_t end = json_extent(s, pos);
    if (end == std::string_view::npos) {
      if (at_end && !meant) return BlockParse::text(s.size(), false);
      return BlockParse::need_more();
    }
    ToolCall call;
    if (!call_from_json(parse_json(s.substr(pos, end - pos)), &call)) {
      return BlockParse::text(end, /*malformed=*/meant);
    }
    call.id.clear();  // Llama writes no ids
    return calls_parse({std::move(call)}, end);
  }

 private:
  std::vector<std::string> markers_{std::string(kPythonTag)};
  std::vector<std::string> hints_{"}"};
};

// ---- Mistral --------------------------------------------------------------------------

constexpr std::string_view kToolCalls = "[TOOL_CALLS]";
constexpr std::string_view kArgs = "[ARGS]";
constexpr std::string_view kCallId = "[CALL_ID]";

bool is_name_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

class MistralFormat final : public ToolCallFormat {
 public:
  const std::vector<std::string>& start_markers() const override { return markers_; }
  const std::vector<std::string>& completion_hints() const override { return hints_; }

  BlockParse parse(std::string_view s, bool at_end) const override {
    const size_t pos = skip_space(s, kToolCalls.size());
    if (pos == s.size()) return BlockParse::need_more();
    if (s[pos] == '[' || s[pos] == '{') return parse_json_form(s, pos);
    return parse_name_form(s, pos);
  }

 private:
  // [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "..."}, ...] (Nemo, Small 3)
  static BlockParse parse_json_form(std::string_view s, size_t pos) {
    const size_t end = json_extent(s, pos);
    if (end == std::string_view::npos) return BlockParse::need_more();
    nlohmann::ordered_json value = parse_json(s.substr(pos, end - pos));
    if (value.is_object()) value = nlohmann::ordered_json::array({value});
    std::vector<ToolCall> calls;
    if (value.is_array()) {
      for (const auto& item : value) {
        ToolCall call;
        if (!call_from_json(item, &call)) return BlockParse::text(end, /*malformed=*/true);
        calls.push_back(std::move(call));
      }
    }
    if (calls.empty()) return BlockParse::text(end, /*malformed=*/true);
    return calls_parse(std::move(calls), end);
  }

  // [TOOL_CALLS]name[ARGS]{...} (Devstral, Ministral 3), optionally name[CALL_ID]id[ARGS].
  static BlockParse parse_name_form(std::string_view s, size_t pos) {
    const BlockParse bad = BlockParse::text(kToolCalls.size(), /*malformed=*/true);
    ToolCall call;
    size_t p = pos;
    while (p < s.size() && is_name_byte(s[p])) ++p;
    if (p == s.size()) return BlockParse::need_more();
    call.name = std::string(s.substr(pos, p - pos));
    if (call.name.empty()) return bad;
    if (starts_with(s, p, kCallId)) {
      const size_t id_start = p + kCallId.size();
      const size_t args = s.find(kArgs, id_start);
      if (args == std::string_view::npos) {
        return s.size() - id_start > 64 ? bad : BlockParse::need_more();
      }
      call.id = std::string(s.substr(id_start, args - id_start));
      p = args;
    }
    if (!starts_with(s, p, kArgs)) {
      return could_become(s.substr(p), kArgs) || could_become(s.substr(p), kCallId)
                 ? BlockParse::need_more()
                 : bad;
    }
    p = skip_space(s, p + kArgs.size());
    if (p == s.size()) return BlockParse::need_more();
    if (s[p] != '{') return bad;
    const size_t end = json_extent(s, p);
    if (end == std::string_view::npos) return BlockParse::need_more();
    const nlohmann::ordered_json args = parse_json(s.substr(p, end - p));
    if (!args.is_object()) return BlockParse::text(end, /*malformed=*/true);
    call.arguments = dump_json(args);
    return calls_parse({std::move(call)}, end);
  }

  std::vector<std::string> markers_{std::string(kToolCalls)};
  std::vector<std::string> hints_{"}", "]"};
};

// ---- DeepSeek -------------------------------------------------------------------------

// The markers use U+FF5C (fullwidth vertical bar) and U+2581 (lower one eighth block).
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";

std::string trimmed(std::string_view s) {
  const size_t b = skip_space(s, 0);
  size_t e = s.size();
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// One call inside the block, at inner[*pos]. V3/R1:
//   <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
// V3.1: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
bool read_deepseek_call(std::string_view inner, size_t* pos, ToolCall* call) {
  size_t p = skip_space(inner, *pos);
  if (!starts_with(inner, p, kCallBegin)) return false;
  p += kCallBegin.size();
  const size_t sep = inner.find(kSep, p);
  if (sep == std::string_view::npos) return false;
  std::string head = trimmed(inner.substr(p, sep - p));
  p = skip_space(inner, sep + kSep.size());
  if (p < inner.size() && inner[p] == '{') {
    call->name = head;
  } else {
    const size_t nl = inner.find('\n', p);
    if (nl == std::string_view::npos) return false;
    call->name = trimmed(inner.substr(p, nl - p));
    p = skip_space(inner, nl);
    if (starts_with(inner, p, "```")) p += 3;
    if (starts_with(inner, p, "json")) p += 4;
    p = skip_space(inner, p);
  }
  if (call->name.empty() || p >= inner.size()) return false;
  const size_t end = json_extent(inner, p);
  if (end == std::string_view::npos) return false;
  nlohmann::ordered_json args = parse_json(inner.substr(p, end - p));
  // The R1 template renders string arguments with `tojson`: a JSON string holding the object.
  if (args.is_string()) args = parse_json(args.get<std::string>());
  if (!args.is_object()) return false;
  call->arguments = dump_json(args);
  p = skip_space(inner, end);
  if (starts_with(inner, p, "```")) p = skip_space(inner, p + 3);
  if (!starts_with(inner, p, kCallEnd)) return false;
  *pos = p + kCallEnd.size();
  return true;
}

class DeepSeekFormat final : public ToolCallFormat {
 public:
  const std::vector<std::string>& start_markers() const override { return markers_; }
  const std::vector<std::string>& completion_hints() const override { return hints_; }

  BlockParse parse(std::string_view s, bool at_end) const override {
    size_t close = s.find(kCallsEnd, kCallsBegin.size());
    size_t consumed = close + kCallsEnd.size();
    if (close == std::string_view::npos) {
      // The original R1 template never writes the block's end after a single call; at the
      // end of the stream, calls that each closed are accepted without it.
      if (!at_end) return BlockParse::need_more();
      close = consumed = s.size();
    }
    const std::string_view inner = s.substr(kCallsBegin.size(), close - kCallsBegin.size());
    std::vector<ToolCall> calls;
    size_t pos = 0;
    while (skip_space(inner, pos) < inner.size()) {
      ToolCall call;
      if (!read_deepseek_call(inner, &pos, &call)) {
        if (consumed == s.size() && close == s.size()) return BlockParse::need_more();
        return BlockParse::text(consumed, /*malformed=*/true);
      }
      calls.push_back(std::move(call));
    }
    if (calls.empty()) {
      if (close == s.size()) return BlockParse::need_more();
      return BlockParse::text(consumed, /*malformed=*/true);
    }
    return calls_parse(std::move(calls), consumed);
  }

 private:
  std::vector<std::string> markers_{std::string(kCallsBegin)};
  std::vector<std::string> hints_{std::string(kCallsEnd)};
};

}  // namespace

std::unique_ptr<ToolCallFormat> make_llama3_format() { return std::make_unique<Llama3Format>(); }
std::unique_ptr<ToolCallFormat> make_mistral_format() { return std::make_unique<MistralFormat>(); }
std::unique_ptr<ToolCallFormat> make_deepseek_format() {
  return std::make_unique<DeepSeekFormat>();
}

}  // namespace strata::chat::detail
