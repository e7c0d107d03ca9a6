// `<tool_call>` blocks of the Qwen family: Hermes/Qwen2.5/Qwen3 JSON
// (<tool_call>{"name": ..., "arguments": {...}}</tool_call>) and the Qwen3-Coder/Qwen3.5 XML
// form (<tool_call><function=NAME><parameter=P>VALUE</parameter></function></tool_call>),
// rendered by testdata/templates/Qwen3-Coder.jinja and Qwen3.5-4B.jinja.
#include <algorithm>

#include "chat/parser_text.h"
#include "chat/tool_call_format.h"

namespace strata::chat::detail {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr std::string_view kFunctionOpen = "<function=";
constexpr std::string_view kFunctionClose = "</function>";
constexpr std::string_view kParamOpen = "<parameter=";
constexpr std::string_view kParamClose = "</parameter>";

// Outcome of reading one piece of the block at a position.
enum class Read { kOk, kNeedMore, kBad };

// Expects `marker` at s[*pos] (after whitespace).
Read expect(std::string_view s, size_t* pos, std::string_view marker) {
  const size_t q = skip_space(s, *pos);
  if (starts_with(s, q, marker)) {
    *pos = q + marker.size();
    return Read::kOk;
  }
  return could_become(s.substr(q), marker) ? Read::kNeedMore : Read::kBad;
}

// "NAME>" at s[*pos]: the name must be one line without markup.
Read read_tag_name(std::string_view s, size_t* pos, std::string* name) {
  const size_t end = s.find('>', *pos);
  const size_t bad = s.find_first_of("<\n", *pos);
  if (bad != std::string_view::npos && (end == std::string_view::npos || bad < end)) {
    return Read::kBad;
  }
  if (end == std::string_view::npos) return Read::kNeedMore;
  *name = std::string(s.substr(*pos, end - *pos));
  while (!name->empty() && is_space(name->back())) name->pop_back();
  if (name->empty()) return Read::kBad;
  *pos = end + 1;
  return Read::kOk;
}

class QwenFormat final : public ToolCallFormat {
 public:
  explicit QwenFormat(ToolSchemas schemas) : schemas_(std::move(schemas)) {}

  const std::vector<std::string>& start_markers() const override { return markers_; }
  const std::vector<std::string>& completion_hints() const override { return hints_; }

  BlockParse parse(std::string_view s, bool at_end) const override {
    size_t pos = skip_space(s, kOpen.size());
    if (pos == s.size()) return BlockParse::need_more();
    ToolCall call;
    Read r = Read::kBad;
    if (s[pos] == '{') {
      r = read_json_call(s, &pos, &call);
    } else if (could_become(s.substr(pos), kFunctionOpen)) {
      return BlockParse::need_more();
    } else if (starts_with(s, pos, kFunctionOpen)) {
      r = read_xml_call(s, &pos, &call);
    } else {
      // "<tool_call>" followed by prose: the tag was mentioned, not used.
      return BlockParse::text(kOpen.size(), /*malformed=*/false);
    }
    if (r == Read::kOk) r = expect(s, &pos, kClose);
    // At the end of the stream an unclosed value after which `</tool_call>` still came is
    // broken, not cut off: give back only through that tag so later calls survive.
    if (r == Read::kNeedMore && !at_end) return BlockParse::need_more();
    if (r != Read::kOk) {
      // Give the block back as text, through its closing tag.
      const size_t close = s.find(kClose, kOpen.size());
      if (close == std::string_view::npos) return BlockParse::need_more();
      return BlockParse::text(close + kClose.size(), /*malformed=*/true);
    }
    BlockParse parsed;
    parsed.status = BlockParse::Status::kCalls;
    parsed.consumed = pos;
    parsed.calls.push_back(std::move(call));
    return parsed;
  }

 private:
  static Read read_json_call(std::string_view s, size_t* pos, ToolCall* call) {
    const size_t end = json_extent(s, *pos);
    if (end == std::string_view::npos) return Read::kNeedMore;
    const nlohmann::ordered_json value = parse_json(s.substr(*pos, end - *pos));
    if (!call_from_json(value, call)) return Read::kBad;
    *pos = end;
    return Read::kOk;
  }

  Read read_xml_call(std::string_view s, size_t* pos, ToolCall* call) const {
    *pos += kFunctionOpen.size();
    Read r = read_tag_name(s, pos, &call->name);
    if (r != Read::kOk) return r;
    const nlohmann::json* params = nullptr;
    if (auto it = schemas_.find(call->name); it != schemas_.end()) params = &it->second;
    nlohmann::ordered_json args = nlohmann::ordered_json::object();
    while (true) {
      const size_t q = skip_space(s, *pos);
      if (starts_with(s, q, kFunctionClose)) {
        *pos = q + kFunctionClose.size();
        break;
      }
      if (!starts_with(s, q, kParamOpen)) {
        const std::string_view rest = s.substr(q);
        return could_become(rest, kFunctionClose) || could_become(rest, kParamOpen)
                   ? Read::kNeedMore
                   : Read::kBad;
      }
      *pos = q + kParamOpen.size();
      std::string param;
      r = read_tag_name(s, pos, &param);
      if (r != Read::kOk) return r;
      // The value ends at </parameter>, or, where the model forgot that tag, at the next
      // parameter or the function's end on a new line. First occurrences only, so the
      // answer never changes as more text arrives.
      size_t close = std::string_view::npos;
      size_t next = std::string_view::npos;
      for (std::string_view end : {kParamClose, std::string_view("\n<parameter="),
                                   std::string_view("\n</function>")}) {
        const size_t at = s.find(end, *pos);
        if (at < close) {
          close = at;
          next = end == kParamClose ? at + kParamClose.size() : at;
        }
      }
      if (close == std::string_view::npos) return Read::kNeedMore;
      std::string_view raw = s.substr(*pos, close - *pos);
      // The template writes "<parameter=P>\nVALUE\n</parameter>": drop one newline each side.
      if (raw.starts_with('\n')) raw.remove_prefix(1);
      if (raw.ends_with('\n')) raw.remove_suffix(1);
      args[param] = xml_param_value(raw, param_schema(params, param));
      *pos = next;
    }
    call->arguments = dump_json(args);
    return Read::kOk;
  }

  static const nlohmann::json* param_schema(const nlohmann::json* params, const std::string& name) {
    if (params == nullptr || !params->is_object()) return nullptr;
    auto props = params->find("properties");
    if (props == params->end() || !props->is_object()) return nullptr;
    auto it = props->find(name);
    return it == props->end() ? nullptr : &*it;
  }

  ToolSchemas schemas_;
  std::vector<std::string> markers_{std::string(kOpen)};
  std::vector<std::string> hints_{std::string(kClose)};
};

// The JSON types a schema allows ("type": "x" or ["x", "null"]; anyOf/oneOf branches).
void collect_types(const nlohmann::json& schema, std::vector<std::string>* types) {
  if (!schema.is_object()) return;
  if (auto t = schema.find("type"); t != schema.end()) {
    if (t->is_string()) types->push_back(t->get<std::string>());
    if (t->is_array()) {
      for (const auto& x : *t) {
        if (x.is_string()) types->push_back(x.get<std::string>());
      }
    }
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (auto branches = schema.find(key); branches != schema.end() && branches->is_array()) {
      for (const auto& b : *branches) collect_types(b, types);
    }
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && types->empty()) {
    for (const auto& x : *e) {
      if (x.is_string()) types->push_back("string");
    }
  }
}

bool matches_type(const nlohmann::ordered_json& v, const std::string& type) {
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || v.is_number_unsigned();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return false;
}

}  // namespace

nlohmann::ordered_json xml_param_value(std::string_view raw, const nlohmann::json* schema) {
  std::vector<std::string> types;
  if (schema != nullptr) collect_types(*schema, &types);
  const bool only_string = !types.empty() && std::all_of(types.begin(), types.end(),
                                                         [](const std::string& t) {
                                                           return t == "string";
                                                         });
  if (only_string) return std::string(raw);
  nlohmann::ordered_json parsed = parse_json(raw);
  if (parsed.is_discarded()) {
    // Models write booleans as Python does now and then.
    if (raw == "True") parsed = true;
    if (raw == "False") parsed = false;
    if (raw == "None") parsed = nullptr;
  }
  if (parsed.is_discarded()) return std::string(raw);
  if (types.empty()) return parsed;
  for (const std::string& t : types) {
    if (matches_type(parsed, t)) return parsed;
  }
  return std::string(raw);  // the schema wants something else: keep the model's text
}

bool call_from_json(const nlohmann::ordered_json& value, ToolCall* call) {
  if (!value.is_object()) return false;
  auto name = value.find("name");
  if (name == value.end() || !name->is_string() || name->get<std::string>().empty()) {
    return false;
  }
  auto args = value.find("arguments");
  if (args == value.end()) args = value.find("parameters");
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  if (args != value.end()) {
    object = *args;
    if (object.is_string()) object = parse_json(object.get<std::string>());
    if (!object.is_object()) return false;
  }
  call->name = name->get<std::string>();
  call->arguments = dump_json(object);
  if (auto id = value.find("id"); id != value.end() && id->is_string()) {
    call->id = id->get<std::string>();
  }
  return true;
}

ToolSchemas tool_schemas_from(const nlohmann::json& tools) {
  ToolSchemas schemas;
  if (!tools.is_array()) return schemas;
  for (const auto& tool : tools) {
    const nlohmann::json* fn = &tool;
    if (auto f = tool.find("function"); f != tool.end() && f->is_object()) fn = &*f;
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string()) continue;
    auto params = fn->find("parameters");
    if (params == fn->end()) params = fn->find("input_schema");
    schemas[name->get<std::string>()] =
        params != fn->end() ? *params : nlohmann::json::object();
  }
  return schemas;
}

std::unique_ptr<ToolCallFormat> make_qwen_format(ToolSchemas schemas) {
  return std::make_unique<QwenFormat>(std::move(schemas));
}

}  // namespace strata::chat::detail
