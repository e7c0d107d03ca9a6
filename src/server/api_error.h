// Request errors as values, and their wire form in each dialect: one table for OpenAI, one
// for Anthropic (api_error.cpp). Adapters build ApiErrors; only the tables pick status codes.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::server {

enum class ErrorKind {
  kInvalidRequest,   // malformed JSON, wrong types, missing fields
  kAuthentication,   // missing or wrong API key
  kNotFound,         // unknown route or object
  kModelNotFound,    // a model this server does not serve
  kTooLarge,         // body over the limit
  kRateLimited,      // too many requests waiting
  kOverloaded,       // shutting down or the engine refuses work
  kContextExceeded,  // prompt does not fit the context
  kInternal,
};

struct ApiError {
  ErrorKind kind = ErrorKind::kInvalidRequest;
  std::string message;
  std::string param;          // the offending field, when known
  int prompt_tokens = 0;      // kContextExceeded
  int context_tokens = 0;     // kContextExceeded
  int retry_after_s = 0;      // kRateLimited / kOverloaded
};

inline ApiError invalid_request(std::string message, std::string param = {}) {
  return ApiError{ErrorKind::kInvalidRequest, std::move(message), std::move(param)};
}

// A value or an ApiError.
template <typename T>
class ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT
  bool is_ok() const { return v_.index() == 0; }
  const ApiError& error() const { return std::get<ApiError>(v_); }
  T& value() { return std::get<T>(v_); }
  T* operator->() { return &std::get<T>(v_); }
  T& operator*() { return value(); }

 private:
  std::variant<T, ApiError> v_;
};

// Writes bytes to the client; false once the client has gone.
class SseSink {
 public:
  virtual ~SseSink() = default;
  virtual bool write(std::string_view bytes) = 0;
};

// What a handler answers: a whole body, or a stream written by `stream` after the headers.
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<void(SseSink&)> stream;  // set: the reply is an SSE stream

  static HttpReply json(const nlohmann::ordered_json& body, int status = 200);
};

enum class Dialect { kOpenAI, kAnthropic };

HttpReply error_reply(Dialect dialect, const ApiError& error);
// The error object a stream carries when generation fails after the headers went out.
nlohmann::ordered_json error_body(Dialect dialect, const ApiError& error);

}  // namespace strata::server
