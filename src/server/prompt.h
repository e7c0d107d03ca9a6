// ChatRequest -> prompt text -> token ids, through the model's chat template; and the output
// parser that reads the model's reply in the same family's syntax.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/parser.h"
#include "chat/template_engine.h"
#include "server/api_error.h"
#include "server/chat_request.h"
#include "tokenizer/tokenizer.h"

namespace strata::server {

struct RenderedPrompt {
  std::string text;
  std::vector<int32_t> tokens;
  chat::ReasoningMode reasoning = chat::ReasoningMode::kNone;
};

class PromptFormat {
 public:
  // template_source empty: the tokenizer's chat template, else ChatML. family empty: guessed
  // from the template text, then from `architecture`.
  static Result<std::unique_ptr<PromptFormat>> create(const tokenizer::Tokenizer& tokenizer,
                                                      std::string template_source,
                                                      std::string family,
                                                      const std::string& architecture);

  ApiResult<RenderedPrompt> render(const ChatRequest& request) const;
  // A fresh parser for one reply to `request` rendered as `prompt`.
  std::unique_ptr<chat::OutputParser> make_parser(const ChatRequest& request,
                                                  const RenderedPrompt& prompt) const;
  const std::string& family() const { return family_; }
  const tokenizer::Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  PromptFormat(const tokenizer::Tokenizer& tokenizer, chat::Template tmpl, std::string family);
  const tokenizer::Tokenizer& tokenizer_;
  chat::Template template_;
  std::string family_;
  std::string bos_text_;
  std::string eos_text_;
};

// Role order templates accept: system/developer messages before the first other message
// merge into one leading system message; later ones join the neighbouring user message;
// consecutive user messages merge. Content stays a string.
Json normalize_messages(const Json& messages);

}  // namespace strata::server
