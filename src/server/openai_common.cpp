#include "server/openai_common.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

Json function_tool(const Json& name, const Json& description, const Json& parameters) {
  Json fn{{"name", name}};
  if (description.is_string()) fn["description"] = description;
  fn["parameters"] = parameters.is_object() ? parameters : Json{{"type", "object"}, {"properties", Json::object()}};
  return {{"type", "function"}, {"function", fn}};
}

}  // namespace

std::optional<ApiError> flatten_tools(const Json& tools, Json* out) {
  if (!tools.is_array()) return invalid_request("'tools' must be an array", "tools");
  for (const Json& t : tools) {
    if (!t.is_object()) return invalid_request("each tool must be an object", "tools");
    const std::string type = t.value("type", "function");
    if (type == "namespace" && t.contains("tools")) {
      if (auto e = flatten_tools(t["tools"], out)) return e;
      continue;
    }
    if (type != "function") continue;  // hosted tools (web_search, file_search, ...) are not ours to run
    auto fn = t.find("function");
    if (fn != t.end() && fn->is_object()) {
      if (!fn->contains("name") || !(*fn)["name"].is_string()) return invalid_request("a function tool needs a 'name'", "tools");
      out->push_back(function_tool((*fn)["name"], fn->value("description", Json()), fn->value("parameters", Json())));
      continue;
    }
    if (!t.contains("name") || !t["name"].is_string()) return invalid_request("a function tool needs a 'name'", "tools");
    out->push_back(function_tool(t["name"], t.value("description", Json()), t.value("parameters", Json())));
  }
  return std::nullopt;
}

std::optional<ApiError> read_openai_tools(const Json& body, bool /*responses_shape*/, ChatRequest* req) {
  auto tools = body.find("tools");
  if (tools == body.end() || tools->is_null()) return std::nullopt;
  Json flat = Json::array();
  if (auto e = flatten_tools(*tools, &flat)) return e;
  if (!flat.empty()) req->tools = flat;
  auto choice = body.find("tool_choice");
  if (choice != body.end() && choice->is_string() && *choice == "none") req->tool_choice_none = true;
  return std::nullopt;
}

std::optional<ApiError> read_openai_common(const Json& body, ChatRequest* req) {
  req->sampling.temperature = 1.0f;
  if (auto e = read_sampling(body, &req->sampling)) return e;
  if (auto e = read_stop(body, "stop", &req->stop)) return e;
  if (auto e = read_bool(body, "stream", &req->stream)) return e;
  if (auto e = read_bool(body, "ignore_eos", &req->ignore_eos)) return e;
  auto effort = body.find("reasoning_effort");
  if (effort != body.end() && effort->is_string()) req->enable_thinking = *effort != "none";
  auto reasoning = body.find("reasoning");
  if (reasoning != body.end() && reasoning->is_object() && reasoning->contains("effort") && (*reasoning)["effort"].is_string()) {
    req->enable_thinking = (*reasoning)["effort"] != "none";
  }
  auto kwargs = body.find("chat_template_kwargs");
  if (kwargs != body.end() && kwargs->is_object() && kwargs->contains("enable_thinking") &&
      (*kwargs)["enable_thinking"].is_boolean()) {
    req->enable_thinking = (*kwargs)["enable_thinking"].get<bool>();
  }
  return std::nullopt;
}

}  // namespace strata::server
