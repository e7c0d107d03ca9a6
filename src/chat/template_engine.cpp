// Chat-template engine: parse once (lexer -> parser), render many times (interpreter).
#include "chat/template_engine.h"

#include "chat/jinja_builtins.h"
#include "chat/jinja_eval.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"

namespace strata::chat {

struct Template::Impl {
  jinja::Body body;
};

Result<Template> Template::parse(std::string_view source) {
  STRATA_ASSIGN_OR_RETURN(std::vector<jinja::Token> tokens, jinja::tokenize(source));
  STRATA_ASSIGN_OR_RETURN(jinja::Body body, jinja::parse_template(std::move(tokens)));
  auto impl = std::make_shared<Impl>();
  impl->body = std::move(body);
  Template t;
  t.impl_ = std::move(impl);
  return t;
}

Result<std::string> Template::render(const nlohmann::ordered_json& context, std::time_t now) const {
  if (!context.is_object())
    return error(ErrorCode::kInvalidArgument, "template context must be a JSON object");
  auto root = std::make_shared<jinja::Scope>();
  jinja::install_globals(*root);
  for (auto it = context.begin(); it != context.end(); ++it)
    root->set(it.key(), jinja::Value::from_json(it.value()));
  jinja::Interpreter interp(now);
  std::string out;
  jinja::Flow flow = jinja::Flow::kNormal;
  STRATA_RETURN_IF_ERROR(interp.exec_body(impl_->body, root, out, flow));
  return out;
}

Result<std::string> Template::render(const nlohmann::ordered_json& context) const {
  return render(context, std::time(nullptr));
}

}  // namespace strata::chat
