// OpenAI dialect: POST /v1/chat/completions. Request -> ChatRequest; the turn's events ->
// chat.completion.chunk SSE, or one chat.completion object.
#include <fmt/format.h>

#include "server/openai_common.h"
#include "server/sse.h"

namespace strata::server {
namespace {

std::optional<ApiError> read_message(const Json& m, size_t idx, Json& tool_names, Json* out) {
  const std::string param = fmt::format("messages[{}]", idx);
  if (!m.is_object()) return invalid_request(param + " must be an object", param);
  std::string role;
  if (auto e = read_string(m, "role", &role, true)) return invalid_request(param + ".role is required (a string)", param + ".role");
  std::string text;
  auto content = m.find("content");
  if (content != m.end()) {
    if (auto e = content_text(*content, "content", &text)) return invalid_request(param + ".content: " + e->message, param + ".content");
  }
  Json msg{{"role", role}, {"content", text}};
  if (role == "assistant") {
    for (const char* key : {"reasoning_content", "reasoning"}) {
      auto r = m.find(key);
      if (r != m.end() && r->is_string() && !r->get<std::string>().empty()) msg["reasoning_content"] = *r;
    }
    auto calls = m.find("tool_calls");
    if (calls != m.end() && !calls->is_null()) {
      if (!calls->is_array()) return invalid_request(param + ".tool_calls must be an array", param + ".tool_calls");
      Json out_calls = Json::array();
      for (const Json& c : *calls) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string()) {
          return invalid_request(param + ".tool_calls[] must be {id, type, function: {name, arguments}}", param + ".tool_calls");
        }
        const std::string id = c.value("id", "");
        tool_names[id] = c["function"]["name"];
        out_calls.push_back({{"id", id},
                             {"type", "function"},
                             {"function", {{"name", c["function"]["name"]},
                                           {"arguments", arguments_value(c["function"].value("arguments", Json("{}")))}}}});
      }
      if (!out_calls.empty()) msg["tool_calls"] = out_calls;
    }
  } else if (role == "tool" || role == "function") {
    msg["role"] = "tool";
    std::string id;
    if (auto e = read_string(m, "tool_call_id", &id)) return e;
    msg["tool_call_id"] = id;
    if (tool_names.contains(id)) msg["name"] = tool_names[id];
    else if (m.contains("name") && m["name"].is_string()) msg["name"] = m["name"];
  } else if (role != "system" && role != "developer" && role != "user") {
    return invalid_request(fmt::format("{}.role '{}' is not one of system, developer, user, assistant, tool", param, role), param + ".role");
  }
  out->push_back(std::move(msg));
  return std::nullopt;
}

std::optional<ApiError> read_chat_request(ServerContext& ctx, const Json& body, ChatRequest* req, bool* include_usage) {
  if (auto e = check_model(ctx, body, &req->model)) return e;
  auto messages = body.find("messages");
  if (messages == body.end() || messages->is_null()) return invalid_request("'messages' is required", "messages");
  if (!messages->is_array()) return invalid_request("'messages' must be an array", "messages");
  if (messages->empty()) return invalid_request("'messages' must not be empty", "messages");
  Json tool_names = Json::object();
  for (size_t i = 0; i < messages->size(); ++i) {
    if (auto e = read_message((*messages)[i], i, tool_names, &req->messages)) return e;
  }
  if (auto e = read_openai_tools(body, /*responses_shape=*/false, req)) return e;
  if (auto e = read_openai_common(body, req)) return e;
  if (auto e = read_int(body, "max_completion_tokens", &req->max_tokens)) return e;
  if (!req->max_tokens) {
    if (auto e = read_int(body, "max_tokens", &req->max_tokens)) return e;
  }
  auto so = body.find("stream_options");
  if (so != body.end() && so->is_object()) {
    if (auto e = read_bool(*so, "include_usage", include_usage)) return e;
  }
  return std::nullopt;
}

Json chat_usage(const TurnResult& r) {
  const engine::Usage& u = r.usage;
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
}

const char* chat_finish(const TurnResult& r) {
  if (ended_in_tool_calls(r)) return "tool_calls";
  return r.finish == engine::FinishReason::kLength ? "length" : "stop";
}

HttpReply chat_reply(const ChatRequest& req, TurnResult r) {
  if (r.finish == engine::FinishReason::kError) {
    return error_reply(Dialect::kOpenAI, ApiError{ErrorKind::kInternal, r.error.to_string(), ""});
  }
  Json message{{"role", "assistant"}};
  const bool calls = !r.parsed.tool_calls.empty();
  message["content"] = r.parsed.content.empty() && calls ? Json() : Json(r.parsed.content);
  if (!r.parsed.reasoning_content.empty()) message["reasoning_content"] = r.parsed.reasoning_content;
  if (calls) {
    Json out = Json::array();
    for (const chat::ToolCall& c : r.parsed.tool_calls) {
      out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    }
    message["tool_calls"] = out;
  }
  Json body{{"id", random_id("chatcmpl-")},
            {"object", "chat.completion"},
            {"created", unix_now()},
            {"model", req.model},
            {"choices", Json::array({Json{{"index", 0}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", chat_finish(r)}}})},
            {"usage", chat_usage(r)}};
  return HttpReply::json(body);
}

// Streams chat.completion.chunk objects.
class ChatStreamWriter {
 public:
  ChatStreamWriter(std::string model, bool include_usage)
      : id_(random_id("chatcmpl-")), created_(unix_now()), model_(std::move(model)), include_usage_(include_usage) {}

  std::string start() { return sse_data(chunk({{"role", "assistant"}, {"content", ""}}, Json())); }

  std::string events(const std::vector<chat::ParseEvent>& events) {
    std::string out;
    for (const chat::ParseEvent& ev : events) {
      switch (ev.kind) {
        case chat::ParseEventKind::kText: out += sse_data(chunk({{"content", ev.text}}, Json())); break;
        case chat::ParseEventKind::kReasoning: out += sse_data(chunk({{"reasoning_content", ev.text}}, Json())); break;
        case chat::ParseEventKind::kToolCallStart:
          out += sse_data(chunk({{"tool_calls", Json::array({Json{{"index", ev.tool_call_idx}, {"id", ev.id}, {"type", "function"},
                                                                  {"function", {{"name", ev.name}, {"arguments", ""}}}}})}},
                                Json()));
          break;
        case chat::ParseEventKind::kToolCallArgs:
          out += sse_data(chunk({{"tool_calls", Json::array({Json{{"index", ev.tool_call_idx}, {"function", {{"arguments", ev.text}}}}})}}, Json()));
          break;
        case chat::ParseEventKind::kToolCallEnd: break;
      }
    }
    return out;
  }

  std::string finish(const TurnResult& r) {
    if (r.finish == engine::FinishReason::kError) {
      return sse_data(error_body(Dialect::kOpenAI, ApiError{ErrorKind::kInternal, r.error.to_string(), ""})) + "data: [DONE]\n\n";
    }
    std::string out = sse_data(chunk(Json::object(), chat_finish(r)));
    if (include_usage_) {
      Json last = base();
      last["choices"] = Json::array();
      last["usage"] = chat_usage(r);
      out += sse_data(last);
    }
    return out + "data: [DONE]\n\n";
  }

 private:
  Json base() const {
    return {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_}};
  }
  Json chunk(Json delta, Json finish_reason) const {
    Json c = base();
    c["choices"] = Json::array({Json{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish_reason)}}});
    return c;
  }
  std::string id_;
  int64_t created_;
  std::string model_;
  bool include_usage_;
};

}  // namespace

HttpReply handle_chat_completions(ServerContext& ctx, const Json& body, ClientProbe& client) {
  ChatRequest req;
  bool include_usage = false;
  if (auto e = read_chat_request(ctx, body, &req, &include_usage)) return error_reply(Dialect::kOpenAI, *e);
  auto turn = Turn::start(ctx, req);
  if (!turn.is_ok()) return error_reply(Dialect::kOpenAI, turn.error());
  if (!req.stream) return chat_reply(req, (*turn)->run_to_end(client));
  HttpReply reply;
  std::shared_ptr<Turn> t = *turn;
  auto writer = std::make_shared<ChatStreamWriter>(req.model, include_usage);
  reply.stream = [t, writer](SseSink& sink) {
    if (!sink.write(writer->start())) return;
    TurnResult r = stream_turn(*t, sink, [&](const auto& events) { return writer->events(events); });
    if (!r.client_gone) sink.write(writer->finish(r));
  };
  return reply;
}

}  // namespace strata::server
