// The dialect-neutral request every adapter translates into: messages in the OpenAI chat
// shape (string content, tool_calls with arguments as objects, as chat templates expect),
// OpenAI-shaped function tools, sampling and limits.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"
#include "server/api_error.h"

namespace strata::server {

using Json = nlohmann::ordered_json;

struct ChatRequest {
  std::string model;
  Json messages = Json::array();   // [{"role","content",("tool_calls"|"tool_call_id"|"reasoning_content")}]
  Json tools;                      // null or [{"type":"function","function":{name,description,parameters}}]
  bool tool_choice_none = false;   // tools rendered but calls not parsed
  std::optional<std::string> raw_prompt;  // legacy completions: the prompt text, no template
  std::optional<bool> enable_thinking;    // unset: the template's default
  engine::SamplingParams sampling;
  std::optional<int> max_tokens;   // unset: as many as the context leaves (capped)
  std::vector<std::string> stop;
  bool stream = false;
  bool ignore_eos = false;         // extension (llama.cpp, vLLM): generate through end-of-text
};

// Typed reads of request fields: a wrong type is an invalid_request_error naming the field.
// Absent (or null) fields leave *out as it was.
std::optional<ApiError> read_string(const Json& body, const char* key, std::string* out, bool required = false);
std::optional<ApiError> read_bool(const Json& body, const char* key, bool* out);
std::optional<ApiError> read_int(const Json& body, const char* key, std::optional<int>* out);
std::optional<ApiError> read_float(const Json& body, const char* key, float* out);
// "stop" / "stop_sequences": a string or an array of strings.
std::optional<ApiError> read_stop(const Json& body, const char* key, std::vector<std::string>* out);
// Shared OpenAI-style sampling fields (temperature, top_p, top_k, min_p, seed, penalties).
std::optional<ApiError> read_sampling(const Json& body, engine::SamplingParams* out);

// Text of a content value: a string, or an array of parts whose text-bearing parts
// ("text", "input_text", "output_text", or plain strings) are concatenated. Other parts
// (images, files) are left out.
std::optional<ApiError> content_text(const Json& content, const char* param, std::string* out);

// Tool arguments as the templates want them: the parsed object when `arguments` is JSON
// text, else the text itself.
Json arguments_value(const Json& arguments);

}  // namespace strata::server
