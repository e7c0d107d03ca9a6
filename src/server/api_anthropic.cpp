// Anthropic dialect: POST /v1/messages and /v1/messages/count_tokens (Claude Code, the
// Anthropic SDK, qwen-code and opencode's anthropic provider). Content blocks -> ChatRequest;
// the turn's events -> message_start ... message_stop with `event:` lines, or one message.
#include <fmt/format.h>

#include "server/openai_common.h"
#include "server/sse.h"

namespace strata::server {
namespace {

constexpr const char* kBillingPrefix = "x-anthropic-billing-header:";

// Claude Code opens the system prompt with a line that changes per session; it would make
// every session's prompt prefix unique, so the prefix cache would never hit.
std::string strip_billing(std::string text) {
  while (text.rfind(kBillingPrefix, 0) == 0) {
    const size_t nl = text.find('\n');
    text = nl == std::string::npos ? "" : text.substr(nl + 1);
  }
  return text;
}

std::optional<ApiError> system_text(const Json& system, bool keep_billing, std::string* out) {
  if (system.is_string()) {
    *out = keep_billing ? system.get<std::string>() : strip_billing(system.get<std::string>());
    return std::nullopt;
  }
  if (!system.is_array()) return invalid_request("'system' must be a string or an array of text blocks", "system");
  std::vector<std::string> parts;
  for (const Json& block : system) {
    if (!block.is_object() || !block.contains("text") || !block["text"].is_string()) {
      return invalid_request("'system' blocks must be {type: text, text}", "system");
    }
    std::string text = block["text"].get<std::string>();
    if (!keep_billing) {
      text = strip_billing(text);
      if (text.empty()) continue;
    }
    parts.push_back(std::move(text));
  }
  out->clear();
  for (size_t i = 0; i < parts.size(); ++i) *out += (i ? "\n" : "") + parts[i];
  return std::nullopt;
}

// One Anthropic message -> neutral messages (a user turn with tool_result blocks becomes
// tool messages followed by the user's text).
std::optional<ApiError> read_message(const Json& m, size_t idx, bool keep_billing, Json& tool_names, Json* out) {
  const std::string param = fmt::format("messages.{}", idx);
  if (!m.is_object()) return invalid_request(param + ": must be an object", param);
  std::string role;
  if (read_string(m, "role", &role, true)) return invalid_request(param + ".role: Field required", param + ".role");
  auto content = m.find("content");
  if (content == m.end() || content->is_null()) return invalid_request(param + ".content: Field required", param + ".content");
  if (role == "system") {
    std::string text;
    if (auto e = system_text(*content, keep_billing, &text)) return invalid_request(param + ".content: " + e->message, param);
    out->push_back({{"role", "system"}, {"content", text}});
    return std::nullopt;
  }
  if (role != "user" && role != "assistant") {
    return invalid_request(fmt::format("{}.role: Input should be 'user', 'assistant' or 'system'", param), param + ".role");
  }
  if (content->is_string()) {
    out->push_back({{"role", role}, {"content", content->get<std::string>()}});
    return std::nullopt;
  }
  if (!content->is_array()) return invalid_request(param + ".content: must be a string or an array of blocks", param + ".content");
  std::string text, thinking;
  Json calls = Json::array();
  for (const Json& b : *content) {
    if (!b.is_object()) return invalid_request(param + ".content: blocks must be objects", param + ".content");
    const std::string type = b.value("type", "");
    if (type == "text") {
      if (!b.contains("text") || !b["text"].is_string()) return invalid_request(param + ".content: text block needs 'text'", param + ".content");
      text += b["text"].get<std::string>();
    } else if (type == "thinking" && b.contains("thinking") && b["thinking"].is_string()) {
      thinking += b["thinking"].get<std::string>();
    } else if (type == "tool_use") {
      if (!b.contains("name") || !b["name"].is_string()) return invalid_request(param + ".content: tool_use needs 'name'", param + ".content");
      const std::string id = b.value("id", "");
      tool_names[id] = b["name"];
      calls.push_back({{"id", id}, {"type", "function"},
                       {"function", {{"name", b["name"]}, {"arguments", b.value("input", Json::object())}}}});
    } else if (type == "tool_result") {
      std::string result;
      if (auto e = content_text(b.value("content", Json("")), "content", &result)) return invalid_request(param + ".content: " + e->message, param + ".content");
      const std::string id = b.value("tool_use_id", "");
      Json msg{{"role", "tool"}, {"tool_call_id", id}, {"content", result}};
      if (tool_names.contains(id)) msg["name"] = tool_names[id];
      out->push_back(std::move(msg));
    }
    // image, document, redacted_thinking, server tool blocks: not rendered
  }
  if (role == "assistant") {
    Json msg{{"role", "assistant"}, {"content", text}};
    if (!thinking.empty()) msg["reasoning_content"] = thinking;
    if (!calls.empty()) msg["tool_calls"] = calls;
    out->push_back(std::move(msg));
  } else if (!text.empty() || out->empty() || out->back()["role"] != "tool") {
    out->push_back({{"role", "user"}, {"content", text}});
  }
  return std::nullopt;
}

std::optional<ApiError> read_tools(const Json& body, ChatRequest* req) {
  auto tools = body.find("tools");
  if (tools == body.end() || tools->is_null()) return std::nullopt;
  if (!tools->is_array()) return invalid_request("tools: must be an array", "tools");
  Json flat = Json::array();
  for (const Json& t : *tools) {
    if (!t.is_object()) return invalid_request("tools: each tool must be an object", "tools");
    if (!t.contains("input_schema")) continue;  // server tools (web_search_...): not ours to run
    if (!t.contains("name") || !t["name"].is_string()) return invalid_request("tools: a tool needs a 'name'", "tools");
    Json fn{{"name", t["name"]}};
    if (t.contains("description") && t["description"].is_string()) fn["description"] = t["description"];
    fn["parameters"] = t["input_schema"].is_object() ? t["input_schema"] : Json{{"type", "object"}};
    flat.push_back({{"type", "function"}, {"function", fn}});
  }
  if (!flat.empty()) req->tools = flat;
  auto choice = body.find("tool_choice");
  if (choice != body.end() && choice->is_object() && choice->value("type", "") == "none") req->tool_choice_none = true;
  return std::nullopt;
}

std::optional<ApiError> read_messages_request(ServerContext& ctx, const Json& body, bool need_max_tokens, ChatRequest* req) {
  if (auto e = check_model(ctx, body, &req->model)) return e;
  auto messages = body.find("messages");
  if (messages == body.end() || messages->is_null()) return invalid_request("messages: Field required", "messages");
  if (!messages->is_array()) return invalid_request("messages: Input should be a valid list", "messages");
  const bool keep = ctx.options.keep_billing_header;
  auto system = body.find("system");
  if (system != body.end() && !system->is_null()) {
    std::string text;
    if (auto e = system_text(*system, keep, &text)) return e;
    if (!text.empty()) req->messages.push_back({{"role", "system"}, {"content", text}});
  }
  Json tool_names = Json::object();
  for (size_t i = 0; i < messages->size(); ++i) {
    if (auto e = read_message((*messages)[i], i, keep, tool_names, &req->messages)) return e;
  }
  if (auto e = read_tools(body, req)) return e;
  if (need_max_tokens) {
    if (!body.contains("max_tokens")) return invalid_request("max_tokens: Field required", "max_tokens");
    if (auto e = read_int(body, "max_tokens", &req->max_tokens)) return e;
  }
  req->sampling.temperature = 1.0f;
  if (auto e = read_sampling(body, &req->sampling)) return e;
  if (auto e = read_stop(body, "stop_sequences", &req->stop)) return e;
  if (auto e = read_bool(body, "stream", &req->stream)) return e;
  req->enable_thinking = false;
  auto thinking = body.find("thinking");
  if (thinking != body.end() && thinking->is_object()) {
    const std::string type = thinking->value("type", "");
    req->enable_thinking = type == "enabled" || type == "adaptive";
  }
  return std::nullopt;
}

std::string tool_use_id(const std::string& call_id) {
  return call_id.rfind("call_", 0) == 0 ? "toolu_" + call_id.substr(5) : call_id;
}

const char* stop_reason(const TurnResult& r, const ChatRequest& req) {
  if (ended_in_tool_calls(r)) return "tool_use";
  if (r.finish == engine::FinishReason::kLength) return "max_tokens";
  if (!r.stop_matched.empty()) {
    for (const std::string& s : req.stop) {
      if (s == r.stop_matched) return "stop_sequence";
    }
  }
  return "end_turn";
}

Json stop_sequence(const TurnResult& r, const ChatRequest& req) {
  return std::string(stop_reason(r, req)) == "stop_sequence" ? Json(r.stop_matched) : Json();
}

Json messages_usage(const engine::Usage& u) {
  return {{"input_tokens", u.prompt_tokens - u.cached_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", u.cached_tokens},
          {"output_tokens", u.completion_tokens}};
}

Json message_object(const std::string& id, const std::string& model) {
  return {{"id", id}, {"type", "message"}, {"role", "assistant"}, {"model", model}, {"content", Json::array()},
          {"stop_reason", nullptr}, {"stop_sequence", nullptr}};
}

HttpReply message_reply(const ChatRequest& req, const TurnResult& r) {
  if (r.finish == engine::FinishReason::kError) {
    return error_reply(Dialect::kAnthropic, ApiError{ErrorKind::kInternal, r.error.to_string(), ""});
  }
  Json msg = message_object(random_id("msg_"), req.model);
  if (!r.parsed.reasoning_content.empty()) {
    msg["content"].push_back({{"type", "thinking"}, {"thinking", r.parsed.reasoning_content}, {"signature", ""}});
  }
  if (!r.parsed.content.empty() || r.parsed.tool_calls.empty()) {
    msg["content"].push_back({{"type", "text"}, {"text", r.parsed.content}});
  }
  for (const chat::ToolCall& c : r.parsed.tool_calls) {
    msg["content"].push_back({{"type", "tool_use"}, {"id", tool_use_id(c.id)}, {"name", c.name}, {"input", arguments_value(c.arguments)}});
  }
  msg["stop_reason"] = stop_reason(r, req);
  msg["stop_sequence"] = stop_sequence(r, req);
  msg["usage"] = messages_usage(r.usage);
  return HttpReply::json(msg);
}

// message_start, then one content block open at a time, then message_delta, message_stop.
class MessagesStreamWriter {
 public:
  MessagesStreamWriter(ChatRequest req, int prompt_tokens) : req_(std::move(req)), prompt_tokens_(prompt_tokens) {}

  std::string start() {
    Json msg = message_object(random_id("msg_"), req_.model);
    msg["usage"] = {{"input_tokens", prompt_tokens_}, {"cache_creation_input_tokens", 0}, {"cache_read_input_tokens", 0}, {"output_tokens", 0}};
    return sse_event("message_start", {{"type", "message_start"}, {"message", msg}}) +
           sse_event("ping", {{"type", "ping"}});
  }

  std::string events(const std::vector<chat::ParseEvent>& events) {
    std::string out;
    for (const chat::ParseEvent& ev : events) {
      switch (ev.kind) {
        case chat::ParseEventKind::kText:
          if (open_ != Open::kText) out += open_block(Open::kText, {{"type", "text"}, {"text", ""}});
          out += delta({{"type", "text_delta"}, {"text", ev.text}});
          break;
        case chat::ParseEventKind::kReasoning:
          if (open_ != Open::kThinking) out += open_block(Open::kThinking, {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
          out += delta({{"type", "thinking_delta"}, {"thinking", ev.text}});
          break;
        case chat::ParseEventKind::kToolCallStart:
          out += open_block(Open::kTool, {{"type", "tool_use"}, {"id", tool_use_id(ev.id)}, {"name", ev.name}, {"input", Json::object()}});
          break;
        case chat::ParseEventKind::kToolCallArgs: out += delta({{"type", "input_json_delta"}, {"partial_json", ev.text}}); break;
        case chat::ParseEventKind::kToolCallEnd: out += close_block(); break;
      }
    }
    return out;
  }

  std::string finish(const TurnResult& r) {
    std::string out = close_block();
    if (r.finish == engine::FinishReason::kError) {
      return out + sse_event("error", error_body(Dialect::kAnthropic, ApiError{ErrorKind::kInternal, r.error.to_string(), ""}));
    }
    Json usage = messages_usage(r.usage);
    out += sse_event("message_delta", {{"type", "message_delta"},
                                       {"delta", {{"stop_reason", stop_reason(r, req_)}, {"stop_sequence", stop_sequence(r, req_)}}},
                                       {"usage", usage}});
    return out + sse_event("message_stop", {{"type", "message_stop"}});
  }

 private:
  enum class Open { kNone, kText, kThinking, kTool };

  std::string open_block(Open kind, Json block) {
    std::string out = close_block();
    open_ = kind;
    out += sse_event("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(block)}});
    return out;
  }
  std::string delta(Json d) {
    return sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(d)}});
  }
  std::string close_block() {
    if (open_ == Open::kNone) return "";
    std::string out;
    if (open_ == Open::kThinking) out += delta({{"type", "signature_delta"}, {"signature", ""}});
    out += sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    open_ = Open::kNone;
    return out;
  }

  ChatRequest req_;
  int prompt_tokens_;
  Open open_ = Open::kNone;
  int index_ = 0;
};

}  // namespace

HttpReply handle_messages(ServerContext& ctx, const Json& body, ClientProbe& client) {
  ChatRequest req;
  if (auto e = read_messages_request(ctx, body, /*need_max_tokens=*/true, &req)) return error_reply(Dialect::kAnthropic, *e);
  if (req.messages.empty()) return error_reply(Dialect::kAnthropic, invalid_request("messages: at least one message is required", "messages"));
  auto turn = Turn::start(ctx, req);
  if (!turn.is_ok()) return error_reply(Dialect::kAnthropic, turn.error());
  if (!req.stream) return message_reply(req, (*turn)->run_to_end(client));
  HttpReply reply;
  std::shared_ptr<Turn> t = *turn;
  auto writer = std::make_shared<MessagesStreamWriter>(req, t->prompt_tokens());
  reply.stream = [t, writer](SseSink& sink) {
    if (!sink.write(writer->start())) return;
    TurnResult r = stream_turn(*t, sink, [&](const auto& events) { return writer->events(events); });
    if (!r.client_gone) sink.write(writer->finish(r));
  };
  return reply;
}

HttpReply handle_count_tokens(ServerContext& ctx, const Json& body, ClientProbe&) {
  ChatRequest req;
  if (auto e = read_messages_request(ctx, body, /*need_max_tokens=*/false, &req)) return error_reply(Dialect::kAnthropic, *e);
  auto rendered = ctx.format->render(req);
  if (!rendered.is_ok()) return error_reply(Dialect::kAnthropic, rendered.error());
  return HttpReply::json({{"input_tokens", static_cast<int>(rendered->tokens.size())}});
}

}  // namespace strata::server
