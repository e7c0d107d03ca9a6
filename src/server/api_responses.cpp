// OpenAI dialect: POST /v1/responses (Codex, the SDK's responses helpers), GET/DELETE
// /v1/responses/{id}. Input items -> ChatRequest (previous_response_id resolved from the
// store); the turn's events -> the Responses event sequence that begins with
// response.created, or one response object.
#include <fmt/format.h>

#include "server/openai_common.h"
#include "server/sse.h"

namespace strata::server {
namespace {

struct ResponsesRequest {
  ChatRequest chat;
  Json history = Json::array();  // conversation without instructions (what gets stored)
  std::string instructions;
  std::string previous_response_id;
  bool store = true;
  Json echo = Json::object();    // request fields the response object repeats
};

Json& open_assistant(Json& history) {
  if (history.empty() || history.back()["role"] != "assistant" || history.back().contains("closed")) {
    history.push_back({{"role", "assistant"}, {"content", ""}});
  }
  return history.back();
}

std::optional<ApiError> read_item(const Json& item, size_t idx, Json& history, std::string& reasoning) {
  const std::string param = fmt::format("input[{}]", idx);
  if (!item.is_object()) return invalid_request(param + " must be an object", param);
  const std::string type = item.value("type", item.contains("role") ? "message" : "");
  if (type == "message") {
    std::string role, text;
    if (read_string(item, "role", &role, true)) return invalid_request(param + ".role is required", param + ".role");
    if (auto e = content_text(item.value("content", Json()), "content", &text)) return invalid_request(param + ".content: " + e->message, param + ".content");
    if (role == "assistant") {
      Json& m = open_assistant(history);
      std::string prev = m["content"].get<std::string>();
      m["content"] = prev + text;
      if (!reasoning.empty()) m["reasoning_content"] = reasoning;
      reasoning.clear();
      return std::nullopt;
    }
    if (role != "user" && role != "system" && role != "developer") {
      return invalid_request(fmt::format("{}.role '{}' is not one of user, assistant, system, developer", param, role), param + ".role");
    }
    history.push_back({{"role", role}, {"content", text}});
    return std::nullopt;
  }
  if (type == "function_call") {
    std::string name, call_id, arguments = "{}";
    if (read_string(item, "name", &name, true)) return invalid_request(param + ".name is required", param + ".name");
    if (auto e = read_string(item, "call_id", &call_id)) return e;
    if (auto e = read_string(item, "arguments", &arguments)) return e;
    Json& m = open_assistant(history);
    if (!reasoning.empty()) m["reasoning_content"] = reasoning;
    reasoning.clear();
    if (!m.contains("tool_calls")) m["tool_calls"] = Json::array();
    m["tool_calls"].push_back({{"id", call_id}, {"type", "function"},
                               {"function", {{"name", name}, {"arguments", arguments_value(arguments)}}}});
    return std::nullopt;
  }
  if (type == "function_call_output") {
    std::string call_id, output;
    if (auto e = read_string(item, "call_id", &call_id)) return e;
    if (auto e = content_text(item.value("output", Json("")), "output", &output)) return invalid_request(param + ".output: " + e->message, param + ".output");
    Json msg{{"role", "tool"}, {"tool_call_id", call_id}, {"content", output}};
    for (const Json& m : history) {
      if (!m.contains("tool_calls")) continue;
      for (const Json& c : m["tool_calls"]) {
        if (c["id"] == call_id) msg["name"] = c["function"]["name"];
      }
    }
    history.push_back(std::move(msg));
    return std::nullopt;
  }
  if (type == "reasoning") {
    std::string text;
    for (const char* key : {"content", "summary"}) {
      if (item.contains(key) && item[key].is_array()) {
        std::string part;
        if (!content_text(item[key], key, &part)) text += part;
      }
    }
    reasoning += text;
    return std::nullopt;
  }
  return std::nullopt;  // item_reference, hosted tool calls, ...: not ours to replay
}

std::optional<ApiError> read_responses_request(ServerContext& ctx, const Json& body, ResponsesRequest* r) {
  if (auto e = check_model(ctx, body, &r->chat.model)) return e;
  if (auto e = read_string(body, "instructions", &r->instructions)) return e;
  if (auto e = read_string(body, "previous_response_id", &r->previous_response_id)) return e;
  if (auto e = read_bool(body, "store", &r->store)) return e;
  if (!r->previous_response_id.empty()) {
    auto prev = ctx.responses.get(r->previous_response_id);
    if (!prev) {
      return ApiError{ErrorKind::kNotFound, fmt::format("Previous response with id '{}' not found.", r->previous_response_id),
                      "previous_response_id"};
    }
    r->history = prev->messages;
  }
  auto input = body.find("input");
  if (input == body.end() || input->is_null()) return invalid_request("'input' is required", "input");
  if (input->is_string()) {
    r->history.push_back({{"role", "user"}, {"content", input->get<std::string>()}});
  } else if (input->is_array()) {
    std::string reasoning;
    for (size_t i = 0; i < input->size(); ++i) {
      if (auto e = read_item((*input)[i], i, r->history, reasoning)) return e;
    }
  } else {
    return invalid_request("'input' must be a string or an array of items", "input");
  }
  for (Json& m : r->history) m.erase("closed");
  r->chat.messages = Json::array();
  if (!r->instructions.empty()) r->chat.messages.push_back({{"role", "system"}, {"content", r->instructions}});
  for (const Json& m : r->history) r->chat.messages.push_back(m);
  if (auto e = read_openai_tools(body, true, &r->chat)) return e;
  if (auto e = read_openai_common(body, &r->chat)) return e;
  if (auto e = read_int(body, "max_output_tokens", &r->chat.max_tokens)) return e;
  for (const char* key : {"tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "metadata", "reasoning"}) {
    if (body.contains(key)) r->echo[key] = body[key];
  }
  return std::nullopt;
}

Json responses_usage(const TurnResult& r) {
  const engine::Usage& u = r.usage;
  return {{"input_tokens", u.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"output_tokens", u.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

Json response_object(const std::string& id, int64_t created, const ResponsesRequest& req, const char* status) {
  Json r{{"id", id}, {"object", "response"}, {"created_at", created}, {"status", status}, {"error", nullptr},
         {"incomplete_details", nullptr},
         {"instructions", req.instructions.empty() ? Json() : Json(req.instructions)},
         {"max_output_tokens", req.chat.max_tokens ? Json(*req.chat.max_tokens) : Json()},
         {"model", req.chat.model}, {"output", Json::array()},
         {"parallel_tool_calls", req.echo.value("parallel_tool_calls", Json(true))},
         {"previous_response_id", req.previous_response_id.empty() ? Json() : Json(req.previous_response_id)},
         {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
         {"store", req.store},
         {"temperature", req.echo.value("temperature", Json(1.0))},
         {"text", {{"format", {{"type", "text"}}}}},
         {"tool_choice", req.echo.value("tool_choice", Json("auto"))},
         {"tools", req.echo.value("tools", Json::array())},
         {"top_p", req.echo.value("top_p", Json(1.0))},
         {"truncation", "disabled"}, {"usage", nullptr},
         {"metadata", req.echo.value("metadata", Json::object())}};
  return r;
}

Json message_item(const std::string& id, const std::string& text, const char* status) {
  return {{"id", id}, {"type", "message"}, {"status", status}, {"role", "assistant"},
          {"content", Json::array({Json{{"type", "output_text"}, {"text", text}, {"annotations", Json::array()}, {"logprobs", Json::array()}}})}};
}
Json reasoning_item(const std::string& id, const std::string& text) {
  return {{"id", id}, {"type", "reasoning"}, {"summary", Json::array()},
          {"content", Json::array({Json{{"type", "reasoning_text"}, {"text", text}}})}};
}
Json call_item(const std::string& id, const chat::ToolCall& c, const char* status) {
  return {{"id", id}, {"type", "function_call"}, {"status", status}, {"arguments", c.arguments}, {"call_id", c.id}, {"name", c.name}};
}

// Finishes the response object and stores the conversation.
Json complete(ServerContext& ctx, const ResponsesRequest& req, Json response, Json output, const TurnResult& r) {
  const bool cut = r.finish == engine::FinishReason::kLength;
  response["status"] = cut ? "incomplete" : "completed";
  if (cut) response["incomplete_details"] = {{"reason", "max_output_tokens"}};
  response["output"] = std::move(output);
  response["usage"] = responses_usage(r);
  if (req.store) {
    Json history = req.history;
    Json m{{"role", "assistant"}, {"content", r.parsed.content}};
    if (!r.parsed.reasoning_content.empty()) m["reasoning_content"] = r.parsed.reasoning_content;
    if (!r.parsed.tool_calls.empty()) {
      m["tool_calls"] = Json::array();
      for (const chat::ToolCall& c : r.parsed.tool_calls) {
        m["tool_calls"].push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", arguments_value(c.arguments)}}}});
      }
    }
    history.push_back(std::move(m));
    ctx.responses.put(response["id"].get<std::string>(), StoredResponse{std::move(history), response});
  }
  return response;
}

// The streaming state machine: one output item open at a time.
class ResponsesStreamWriter {
 public:
  ResponsesStreamWriter(ServerContext& ctx, ResponsesRequest req)
      : ctx_(ctx), req_(std::move(req)), id_(random_id("resp_")), created_(unix_now()) {}

  std::string start() {
    Json r = response_object(id_, created_, req_, "in_progress");
    std::string out = event("response.created", {{"response", r}});
    return out + event("response.in_progress", {{"response", r}});
  }

  std::string events(const std::vector<chat::ParseEvent>& events) {
    std::string out;
    for (const chat::ParseEvent& ev : events) {
      switch (ev.kind) {
        case chat::ParseEventKind::kText:
          if (open_ != Open::kMessage) out += open_item(Open::kMessage);
          text_ += ev.text;
          out += event("response.output_text.delta", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0},
                                                     {"delta", ev.text}, {"logprobs", Json::array()}});
          break;
        case chat::ParseEventKind::kReasoning:
          if (open_ != Open::kReasoning) out += open_item(Open::kReasoning);
          text_ += ev.text;
          out += event("response.reasoning_text.delta", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0}, {"delta", ev.text}});
          break;
        case chat::ParseEventKind::kToolCallStart:
          out += close_item();
          call_ = chat::ToolCall{ev.id, ev.name, ""};
          out += open_item(Open::kCall);
          break;
        case chat::ParseEventKind::kToolCallArgs:
          call_.arguments += ev.text;
          out += event("response.function_call_arguments.delta", {{"item_id", item_id_}, {"output_index", index()}, {"delta", ev.text}});
          break;
        case chat::ParseEventKind::kToolCallEnd: out += close_item(); break;
      }
    }
    return out;
  }

  std::string finish(const TurnResult& r) {
    std::string out = close_item();
    if (r.finish == engine::FinishReason::kError) {
      Json failed = response_object(id_, created_, req_, "failed");
      failed["error"] = {{"code", "server_error"}, {"message", r.error.to_string()}};
      return out + event("response.failed", {{"response", failed}});
    }
    Json done = complete(ctx_, req_, response_object(id_, created_, req_, "completed"), output_, r);
    return out + event("response.completed", {{"response", done}});
  }

 private:
  enum class Open { kNone, kMessage, kReasoning, kCall };
  int index() const { return static_cast<int>(output_.size()); }

  std::string event(const char* type, Json fields) {
    Json e{{"type", type}, {"sequence_number", seq_++}};
    for (auto& [k, v] : fields.items()) e[k] = v;
    return sse_event(type, e);
  }

  std::string open_item(Open kind) {
    std::string out = close_item();
    open_ = kind;
    text_.clear();
    if (kind == Open::kMessage) {
      item_id_ = random_id("msg_");
      Json item = message_item(item_id_, "", "in_progress");
      item["content"] = Json::array();
      out += event("response.output_item.added", {{"output_index", index()}, {"item", item}});
      out += event("response.content_part.added", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0},
                                                  {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", Json::array()}, {"logprobs", Json::array()}}}});
    } else if (kind == Open::kReasoning) {
      item_id_ = random_id("rs_");
      Json item = reasoning_item(item_id_, "");
      item["content"] = Json::array();
      out += event("response.output_item.added", {{"output_index", index()}, {"item", item}});
      out += event("response.content_part.added", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0},
                                                  {"part", {{"type", "reasoning_text"}, {"text", ""}}}});
    } else {
      item_id_ = random_id("fc_");
      out += event("response.output_item.added", {{"output_index", index()}, {"item", call_item(item_id_, call_, "in_progress")}});
    }
    return out;
  }

  std::string close_item() {
    std::string out;
    Json item;
    if (open_ == Open::kMessage) {
      item = message_item(item_id_, text_, "completed");
      out += event("response.output_text.done", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0}, {"text", text_}, {"logprobs", Json::array()}});
      out += event("response.content_part.done", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0}, {"part", item["content"][0]}});
    } else if (open_ == Open::kReasoning) {
      item = reasoning_item(item_id_, text_);
      out += event("response.reasoning_text.done", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0}, {"text", text_}});
      out += event("response.content_part.done", {{"item_id", item_id_}, {"output_index", index()}, {"content_index", 0}, {"part", item["content"][0]}});
    } else if (open_ == Open::kCall) {
      item = call_item(item_id_, call_, "completed");
      out += event("response.function_call_arguments.done", {{"item_id", item_id_}, {"output_index", index()}, {"arguments", call_.arguments}});
    } else {
      return out;
    }
    out += event("response.output_item.done", {{"output_index", index()}, {"item", item}});
    output_.push_back(std::move(item));
    open_ = Open::kNone;
    return out;
  }

  ServerContext& ctx_;
  ResponsesRequest req_;
  std::string id_;
  int64_t created_;
  int seq_ = 0;
  Open open_ = Open::kNone;
  std::string item_id_;
  std::string text_;
  chat::ToolCall call_;
  Json output_ = Json::array();
};

Json output_from(const TurnResult& r) {
  Json output = Json::array();
  if (!r.parsed.reasoning_content.empty()) output.push_back(reasoning_item(random_id("rs_"), r.parsed.reasoning_content));
  if (!r.parsed.content.empty() || r.parsed.tool_calls.empty()) {
    output.push_back(message_item(random_id("msg_"), r.parsed.content, "completed"));
  }
  for (const chat::ToolCall& c : r.parsed.tool_calls) output.push_back(call_item(random_id("fc_"), c, "completed"));
  return output;
}

}  // namespace

HttpReply handle_responses(ServerContext& ctx, const Json& body, ClientProbe& client) {
  ResponsesRequest req;
  if (auto e = read_responses_request(ctx, body, &req)) return error_reply(Dialect::kOpenAI, *e);
  auto turn = Turn::start(ctx, req.chat);
  if (!turn.is_ok()) return error_reply(Dialect::kOpenAI, turn.error());
  if (!req.chat.stream) {
    TurnResult r = (*turn)->run_to_end(client);
    if (r.finish == engine::FinishReason::kError) {
      return error_reply(Dialect::kOpenAI, ApiError{ErrorKind::kInternal, r.error.to_string(), ""});
    }
    Json out = complete(ctx, req, response_object(random_id("resp_"), unix_now(), req, "completed"), output_from(r), r);
    return HttpReply::json(out);
  }
  HttpReply reply;
  std::shared_ptr<Turn> t = *turn;
  auto writer = std::make_shared<ResponsesStreamWriter>(ctx, std::move(req));
  reply.stream = [t, writer](SseSink& sink) {
    if (!sink.write(writer->start())) return;
    TurnResult r = stream_turn(*t, sink, [&](const auto& events) { return writer->events(events); });
    if (!r.client_gone) sink.write(writer->finish(r));
  };
  return reply;
}

HttpReply handle_get_response(ServerContext& ctx, const std::string& id) {
  auto stored = ctx.responses.get(id);
  if (!stored) return error_reply(Dialect::kOpenAI, ApiError{ErrorKind::kNotFound, fmt::format("No response with id '{}'.", id), ""});
  return HttpReply::json(stored->response);
}

HttpReply handle_delete_response(ServerContext& ctx, const std::string& id) {
  if (!ctx.responses.erase(id)) {
    return error_reply(Dialect::kOpenAI, ApiError{ErrorKind::kNotFound, fmt::format("No response with id '{}'.", id), ""});
  }
  return HttpReply::json({{"id", id}, {"object", "response"}, {"deleted", true}});
}

}  // namespace strata::server
