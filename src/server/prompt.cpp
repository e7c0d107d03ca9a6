// Prompt rendering and parser choice.
#include "server/prompt.h"

#include <fmt/format.h>

#include <random>

#include "chat/template_chat.h"

namespace strata::server {
namespace {

// Used when a model carries no template: ChatML, tools as Hermes-style JSON.
constexpr const char* kChatMLTemplate =
    "{%- if tools %}<|im_start|>system\n{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n"
    "{% endif %}# Tools\n<tools>\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools>\n"
    "Call a tool as <tool_call>\n{\"name\": NAME, \"arguments\": ARGS}\n</tool_call><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}{% if m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}{% for tc in m.tool_calls %}<tool_call>\n{\"name\": \"{{ tc.function.name }}\", "
    "\"arguments\": {{ tc.function.arguments | tojson }}}\n</tool_call>{% endfor %}{% endif %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

std::string guess_family(const std::string& tmpl, const std::string& architecture) {
  if (tmpl.find("<|channel|>") != std::string::npos) return "gpt-oss";
  if (tmpl.find("<function=") != std::string::npos) return "qwen3-coder";
  if (tmpl.find("<tool_call>") != std::string::npos) {
    return tmpl.find("<think>") != std::string::npos ? "qwen3" : "hermes";
  }
  if (tmpl.find("[TOOL_CALLS]") != std::string::npos) return "mistral";
  if (tmpl.find("<｜tool▁calls▁begin｜>") != std::string::npos) return "deepseek";
  if (tmpl.find("<|python_tag|>") != std::string::npos || tmpl.find("<|eom_id|>") != std::string::npos) {
    return "llama3";
  }
  std::string fam = chat::output_parser_family_for(architecture);
  return fam == "none" && tmpl.find("<|im_start|>") != std::string::npos ? "hermes" : fam;
}

bool is_system_role(const Json& m) {
  const std::string role = m.value("role", "");
  return role == "system" || role == "developer";
}

void append_text(Json& message, const std::string& text) {
  std::string content = message["content"].is_string() ? message["content"].get<std::string>() : "";
  message["content"] = content.empty() ? text : content + "\n\n" + text;
}

}  // namespace

Json normalize_messages(const Json& messages) {
  Json out = Json::array();
  std::string leading_system;
  bool seen_other = false;
  Json pending_system = Json::array();  // later system texts waiting for a user message
  for (const Json& m : messages) {
    if (is_system_role(m)) {
      const std::string text = m.value("content", "");
      if (!seen_other) {
        leading_system = leading_system.empty() ? text : leading_system + "\n\n" + text;
      } else if (!out.empty() && out.back()["role"] == "user") {
        append_text(out.back(), text);
      } else {
        pending_system.push_back(text);
      }
      continue;
    }
    seen_other = true;
    Json copy = m;
    if (copy["role"] == "user") {
      for (const Json& t : pending_system) {
        std::string content = copy["content"].is_string() ? copy["content"].get<std::string>() : "";
        copy["content"] = t.get<std::string>() + (content.empty() ? "" : "\n\n" + content);
      }
      pending_system = Json::array();
      if (!out.empty() && out.back()["role"] == "user") {
        append_text(out.back(), copy["content"].get<std::string>());
        continue;
      }
    }
    out.push_back(std::move(copy));
  }
  for (const Json& t : pending_system) out.push_back({{"role", "user"}, {"content", t}});
  if (!leading_system.empty() || (!messages.empty() && is_system_role(messages[0]))) {
    out.insert(out.begin(), Json{{"role", "system"}, {"content", leading_system}});
  }
  return out;
}

PromptFormat::PromptFormat(const tokenizer::Tokenizer& tokenizer, chat::Template tmpl, std::string family)
    : tokenizer_(tokenizer), template_(std::move(tmpl)), family_(std::move(family)) {
  if (tokenizer.bos_id() >= 0) bos_text_ = tokenizer.token_text(tokenizer.bos_id());
  if (tokenizer.eos_id() >= 0) eos_text_ = tokenizer.token_text(tokenizer.eos_id());
}

Result<std::unique_ptr<PromptFormat>> PromptFormat::create(const tokenizer::Tokenizer& tokenizer,
                                                          std::string template_source, std::string family,
                                                          const std::string& architecture) {
  if (template_source.empty()) template_source = tokenizer.chat_template();
  if (template_source.empty()) template_source = kChatMLTemplate;
  auto tmpl = chat::Template::parse(template_source);
  if (!tmpl.is_ok()) {
    return error(tmpl.status().code(), "chat template: " + tmpl.status().message() +
                                           " (pass --chat-template FILE to use another)");
  }
  if (family.empty()) family = guess_family(template_source, architecture);
  return std::unique_ptr<PromptFormat>(new PromptFormat(tokenizer, std::move(*tmpl), std::move(family)));
}

ApiResult<RenderedPrompt> PromptFormat::render(const ChatRequest& request) const {
  RenderedPrompt out;
  if (request.raw_prompt) {
    out.text = *request.raw_prompt;
  } else {
    chat::ChatRenderOptions opts;
    opts.messages = normalize_messages(request.messages);
    if (request.tools.is_array() && !request.tools.empty()) opts.tools = request.tools;
    opts.add_generation_prompt = true;
    opts.bos_token = bos_text_;
    opts.eos_token = eos_text_;
    if (request.enable_thinking) opts.extra["enable_thinking"] = *request.enable_thinking;
    auto text = chat::render_chat(template_, opts);
    if (!text.is_ok()) return invalid_request("the chat template rejected the messages: " + text.status().message(), "messages");
    out.text = std::move(*text);
  }
  out.tokens = tokenizer_.encode(out.text, /*add_special=*/false, /*parse_special=*/true);
  // The template usually writes BOS itself; add it only where the vocabulary wants one and
  // the text does not start with it.
  if (tokenizer_.add_bos() && tokenizer_.bos_id() >= 0 &&
      (out.tokens.empty() || out.tokens.front() != tokenizer_.bos_id())) {
    out.tokens.insert(out.tokens.begin(), tokenizer_.bos_id());
  }
  out.reasoning = chat::ReasoningMode::kNone;
  if (!request.raw_prompt && family_ != "gpt-oss") {
    out.reasoning = chat::reasoning_mode_from_prompt(out.text, chat::ReasoningMarkers{});
    // A template without thinking support never opens a block by itself.
    if (out.reasoning == chat::ReasoningMode::kOptional && request.enable_thinking == false) {
      out.reasoning = chat::ReasoningMode::kNone;
    }
  }
  return out;
}

std::unique_ptr<chat::OutputParser> PromptFormat::make_parser(const ChatRequest& request,
                                                            const RenderedPrompt& prompt) const {
  chat::ParserOptions opts;
  opts.reasoning = prompt.reasoning;
  const bool has_tools = request.tools.is_array() && !request.tools.empty();
  opts.parse_tool_calls = has_tools && !request.tool_choice_none && !request.raw_prompt;
  if (has_tools) opts.tools = request.tools;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  opts.call_id_seed = rng();
  auto parser = chat::make_output_parser(request.raw_prompt ? "none" : family_, opts);
  if (!parser.is_ok()) parser = chat::make_output_parser("none", opts);
  return std::move(*parser);
}

}  // namespace strata::server
