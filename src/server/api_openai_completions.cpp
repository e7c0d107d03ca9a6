// OpenAI dialect: POST /v1/completions (legacy text completions: the prompt is used as is).
#include "server/openai_common.h"
#include "server/sse.h"

namespace strata::server {
namespace {

std::optional<ApiError> read_prompt(ServerContext& ctx, const Json& body, ChatRequest* req) {
  auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null()) return invalid_request("'prompt' is required", "prompt");
  if (prompt->is_string()) {
    req->raw_prompt = prompt->get<std::string>();
    return std::nullopt;
  }
  if (prompt->is_array() && !prompt->empty()) {
    const Json& first = (*prompt)[0];
    if (first.is_string() && prompt->size() == 1) {
      req->raw_prompt = first.get<std::string>();
      return std::nullopt;
    }
    // Token ids: decode to text so one path renders every prompt.
    std::vector<int32_t> ids;
    for (const Json& t : *prompt) {
      if (!t.is_number_integer()) return invalid_request("'prompt' must be a string, one string in an array, or token ids", "prompt");
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= ctx.format->tokenizer().vocab_size()) return invalid_request("token id out of the vocabulary", "prompt");
      ids.push_back(static_cast<int32_t>(id));
    }
    req->raw_prompt = ctx.format->tokenizer().decode(ids);
    return std::nullopt;
  }
  return invalid_request("'prompt' must be a string, one string in an array, or token ids", "prompt");
}

Json completion_usage(const TurnResult& r) {
  const engine::Usage& u = r.usage;
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

const char* finish_name(const TurnResult& r) { return r.finish == engine::FinishReason::kLength ? "length" : "stop"; }

Json completion_object(const std::string& id, int64_t created, const std::string& model) {
  return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}};
}

Json choice(const std::string& text, Json finish) {
  return Json::array({Json{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}}});
}

}  // namespace

HttpReply handle_completions(ServerContext& ctx, const Json& body, ClientProbe& client) {
  ChatRequest req;
  if (auto e = check_model(ctx, body, &req.model)) return error_reply(Dialect::kOpenAI, *e);
  if (auto e = read_prompt(ctx, body, &req)) return error_reply(Dialect::kOpenAI, *e);
  if (auto e = read_openai_common(body, &req)) return error_reply(Dialect::kOpenAI, *e);
  if (!body.contains("max_tokens")) req.max_tokens = 16;  // the API's default for this endpoint
  if (auto e = read_int(body, "max_tokens", &req.max_tokens)) return error_reply(Dialect::kOpenAI, *e);
  bool include_usage = false;
  auto so = body.find("stream_options");
  if (so != body.end() && so->is_object()) {
    if (auto e = read_bool(*so, "include_usage", &include_usage)) return error_reply(Dialect::kOpenAI, *e);
  }
  auto turn = Turn::start(ctx, req);
  if (!turn.is_ok()) return error_reply(Dialect::kOpenAI, turn.error());
  const std::string id = random_id("cmpl-");
  const int64_t created = unix_now();
  if (!req.stream) {
    TurnResult r = (*turn)->run_to_end(client);
    if (r.finish == engine::FinishReason::kError) {
      return error_reply(Dialect::kOpenAI, ApiError{ErrorKind::kInternal, r.error.to_string(), ""});
    }
    Json out = completion_object(id, created, req.model);
    out["choices"] = choice(r.parsed.content, finish_name(r));
    out["usage"] = completion_usage(r);
    return HttpReply::json(out);
  }
  HttpReply reply;
  std::shared_ptr<Turn> t = *turn;
  std::string model = req.model;
  reply.stream = [t, id, created, model, include_usage](SseSink& sink) {
    TurnResult r = stream_turn(*t, sink, [&](const std::vector<chat::ParseEvent>& events) {
      std::string out;
      for (const chat::ParseEvent& ev : events) {
        if (ev.kind != chat::ParseEventKind::kText) continue;
        Json c = completion_object(id, created, model);
        c["choices"] = choice(ev.text, Json());
        out += sse_data(c);
      }
      return out;
    });
    if (r.client_gone) return;
    if (r.finish == engine::FinishReason::kError) {
      sink.write(sse_data(error_body(Dialect::kOpenAI, ApiError{ErrorKind::kInternal, r.error.to_string(), ""})) + "data: [DONE]\n\n");
      return;
    }
    Json last = completion_object(id, created, model);
    last["choices"] = choice("", finish_name(r));
    std::string out = sse_data(last);
    if (include_usage) {
      Json u = completion_object(id, created, model);
      u["choices"] = Json::array();
      u["usage"] = completion_usage(r);
      out += sse_data(u);
    }
    sink.write(out + "data: [DONE]\n\n");
  };
  return reply;
}

}  // namespace strata::server
