// Chat rendering: the variables Hugging Face's apply_chat_template hands a chat template
// (messages, tools, documents, add_generation_prompt, special tokens, extra kwargs).
#pragma once

#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "chat/template_engine.h"
#include "core/status.h"

namespace strata::chat {

struct ChatRenderOptions {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // OpenAI-format tool definitions; null means no tools (templates then see tools=None, which
  // `tools is defined` still counts as defined, as with transformers).
  nlohmann::ordered_json tools;
  nlohmann::ordered_json documents;
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Extra template variables (enable_thinking, reasoning_effort, ...); a JSON object.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // The clock strftime_now reads; unset: the current time.
  std::optional<std::time_t> now;
};

// The template's variables, in the order transformers passes them.
nlohmann::ordered_json build_chat_context(const ChatRenderOptions& options);

Result<std::string> render_chat(const Template& tmpl, const ChatRenderOptions& options);

}  // namespace strata::chat
