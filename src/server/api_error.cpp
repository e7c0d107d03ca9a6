// The error tables: ErrorKind -> HTTP status and body, per dialect.
#include "server/api_error.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

struct OpenAIRow {
  ErrorKind kind;
  int status;
  const char* type;
  const char* code;  // nullptr: JSON null
};

// Shapes follow api.openai.com: {"error":{"message","type","param","code"}}.
constexpr OpenAIRow kOpenAITable[] = {
    {ErrorKind::kInvalidRequest, 400, "invalid_request_error", nullptr},
    {ErrorKind::kAuthentication, 401, "invalid_request_error", "invalid_api_key"},
    {ErrorKind::kNotFound, 404, "invalid_request_error", "not_found"},
    {ErrorKind::kModelNotFound, 404, "invalid_request_error", "model_not_found"},
    {ErrorKind::kTooLarge, 413, "invalid_request_error", "request_too_large"},
    {ErrorKind::kRateLimited, 429, "requests", "rate_limit_exceeded"},
    {ErrorKind::kOverloaded, 503, "server_error", "overloaded"},
    {ErrorKind::kContextExceeded, 400, "invalid_request_error", "context_length_exceeded"},
    {ErrorKind::kInternal, 500, "server_error", nullptr},
};

struct AnthropicRow {
  ErrorKind kind;
  int status;
  const char* type;
};

// Shapes follow api.anthropic.com: {"type":"error","error":{"type","message"}}.
constexpr AnthropicRow kAnthropicTable[] = {
    {ErrorKind::kInvalidRequest, 400, "invalid_request_error"},
    {ErrorKind::kAuthentication, 401, "authentication_error"},
    {ErrorKind::kNotFound, 404, "not_found_error"},
    {ErrorKind::kModelNotFound, 404, "not_found_error"},
    {ErrorKind::kTooLarge, 413, "request_too_large"},
    {ErrorKind::kRateLimited, 429, "rate_limit_error"},
    {ErrorKind::kOverloaded, 503, "overloaded_error"},
    {ErrorKind::kContextExceeded, 400, "invalid_request_error"},
    {ErrorKind::kInternal, 500, "api_error"},
};

template <typename Row, size_t N>
const Row& row_for(const Row (&table)[N], ErrorKind kind) {
  for (const Row& r : table) {
    if (r.kind == kind) return r;
  }
  return table[N - 1];
}

std::string message_for(Dialect dialect, const ApiError& e) {
  if (e.kind != ErrorKind::kContextExceeded) return e.message;
  if (dialect == Dialect::kAnthropic) {
    return fmt::format("prompt is too long: {} tokens > {} maximum", e.prompt_tokens, e.context_tokens);
  }
  return fmt::format(
      "This model's maximum context length is {} tokens. However, your messages resulted in {} "
      "tokens. Please reduce the length of the messages.",
      e.context_tokens, e.prompt_tokens);
}

int status_for(Dialect dialect, ErrorKind kind) {
  return dialect == Dialect::kOpenAI ? row_for(kOpenAITable, kind).status
                                     : row_for(kAnthropicTable, kind).status;
}

}  // namespace

HttpReply HttpReply::json(const nlohmann::ordered_json& body, int status) {
  HttpReply r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

nlohmann::ordered_json error_body(Dialect dialect, const ApiError& e) {
  nlohmann::ordered_json body;
  if (dialect == Dialect::kOpenAI) {
    const OpenAIRow& row = row_for(kOpenAITable, e.kind);
    body["error"] = {{"message", message_for(dialect, e)},
                     {"type", row.type},
                     {"param", e.param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(e.param)},
                     {"code", row.code ? nlohmann::ordered_json(row.code) : nlohmann::ordered_json()}};
    if (e.kind == ErrorKind::kContextExceeded && e.param.empty()) body["error"]["param"] = "messages";
  } else {
    const AnthropicRow& row = row_for(kAnthropicTable, e.kind);
    body["type"] = "error";
    body["error"] = {{"type", row.type}, {"message", message_for(dialect, e)}};
  }
  return body;
}

HttpReply error_reply(Dialect dialect, const ApiError& e) {
  HttpReply r = HttpReply::json(error_body(dialect, e), status_for(dialect, e.kind));
  if (e.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  return r;
}

}  // namespace strata::server
