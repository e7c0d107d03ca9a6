// Chat rendering: builds transformers' template variables and renders the template.
#include "chat/template_chat.h"

namespace strata::chat {

nlohmann::ordered_json build_chat_context(const ChatRenderOptions& options) {
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = options.messages;
  ctx["tools"] = options.tools;
  ctx["documents"] = options.documents;
  ctx["add_generation_prompt"] = options.add_generation_prompt;
  ctx["bos_token"] = options.bos_token;
  ctx["eos_token"] = options.eos_token;
  if (options.extra.is_object()) {
    for (auto it = options.extra.begin(); it != options.extra.end(); ++it)
      ctx[it.key()] = it.value();
  }
  return ctx;
}

Result<std::string> render_chat(const Template& tmpl, const ChatRenderOptions& options) {
  if (!options.messages.is_array())
    return error(ErrorCode::kInvalidArgument, "messages must be a JSON array");
  return tmpl.render(build_chat_context(options), options.now.value_or(std::time(nullptr)));
}

}  // namespace strata::chat
