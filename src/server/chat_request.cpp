// Field readers shared by the dialect adapters.
#include "server/chat_request.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

const Json* field(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

ApiError wrong_type(const char* key, const char* want) {
  return invalid_request(fmt::format("'{}' must be {}", key, want), key);
}

}  // namespace

std::optional<ApiError> read_string(const Json& body, const char* key, std::string* out, bool required) {
  const Json* v = field(body, key);
  if (v == nullptr) {
    if (required) return invalid_request(fmt::format("'{}' is required", key), key);
    return std::nullopt;
  }
  if (!v->is_string()) return wrong_type(key, "a string");
  *out = v->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> read_bool(const Json& body, const char* key, bool* out) {
  const Json* v = field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return wrong_type(key, "a boolean");
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_int(const Json& body, const char* key, std::optional<int>* out) {
  const Json* v = field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return wrong_type(key, "an integer");
  const double d = v->get<double>();
  if (d < 0) return invalid_request(fmt::format("'{}' must not be negative", key), key);
  *out = d > 1e9 ? 1000000000 : static_cast<int>(d);
  return std::nullopt;
}

std::optional<ApiError> read_float(const Json& body, const char* key, float* out) {
  const Json* v = field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return wrong_type(key, "a number");
  *out = v->get<float>();
  return std::nullopt;
}

std::optional<ApiError> read_stop(const Json& body, const char* key, std::vector<std::string>* out) {
  const Json* v = field(body, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) out->push_back(v->get<std::string>());
    return std::nullopt;
  }
  if (!v->is_array()) return wrong_type(key, "a string or an array of strings");
  for (const Json& s : *v) {
    if (!s.is_string()) return wrong_type(key, "a string or an array of strings");
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> read_sampling(const Json& body, engine::SamplingParams* out) {
  if (auto e = read_float(body, "temperature", &out->temperature)) return e;
  if (auto e = read_float(body, "top_p", &out->top_p)) return e;
  if (auto e = read_float(body, "min_p", &out->min_p)) return e;
  if (auto e = read_float(body, "presence_penalty", &out->presence_penalty)) return e;
  if (auto e = read_float(body, "frequency_penalty", &out->frequency_penalty)) return e;
  if (auto e = read_float(body, "repetition_penalty", &out->repetition_penalty)) return e;
  std::optional<int> top_k, seed;
  if (auto e = read_int(body, "top_k", &top_k)) return e;
  if (top_k) out->top_k = *top_k;
  const Json* s = field(body, "seed");
  if (s != nullptr) {
    if (!s->is_number_integer()) return wrong_type("seed", "an integer");
    out->seed = static_cast<uint64_t>(s->get<int64_t>());
  }
  if (out->top_p <= 0.0f || out->top_p > 1.0f) out->top_p = 1.0f;
  return std::nullopt;
}

std::optional<ApiError> content_text(const Json& content, const char* param, std::string* out) {
  out->clear();
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return wrong_type(param, "a string or an array of content parts");
  for (const Json& part : content) {
    if (part.is_string()) {
      *out += part.get<std::string>();
      continue;
    }
    if (!part.is_object()) return wrong_type(param, "an array of content parts");
    auto text = part.find("text");
    if (text != part.end()) {
      if (!text->is_string()) return wrong_type(param, "parts whose 'text' is a string");
      *out += text->get<std::string>();
    }
  }
  return std::nullopt;
}

Json arguments_value(const Json& arguments) {
  if (!arguments.is_string()) return arguments.is_null() ? Json::object() : arguments;
  Json parsed = Json::parse(arguments.get<std::string>(), nullptr, false);
  if (parsed.is_discarded()) return arguments;
  return parsed;
}

}  // namespace strata::server
