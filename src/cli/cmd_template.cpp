// strata template: render a chat template (a model's, or a file) for a list of messages, as
// the server would before tokenizing.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "chat/template_chat.h"
#include "cli/commands.h"
#include "gguf/gguf.h"

namespace strata::cli {
namespace {

struct TemplateArgs {
  std::string model, file, messages, tools, kwargs;
  bool add_generation_prompt = false;
};

Result<std::string> read_file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return error(ErrorCode::kNotFound, "cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<nlohmann::ordered_json> read_json(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::string text, read_file_text(path));
  auto j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return error(ErrorCode::kInvalidArgument, "'" + path + "' is not valid JSON");
  return j;
}

// The token text for an id stored in the file's metadata (bos/eos for the template).
std::string token_text(const gguf::File& f, const char* key) {
  const auto id = f.get_int(key);
  const gguf::Value* toks = f.find("tokenizer.ggml.tokens");
  if (!id || toks == nullptr || *id < 0 || static_cast<size_t>(*id) >= toks->strings.size()) return "";
  return toks->strings[static_cast<size_t>(*id)];
}

int run_template(const TemplateArgs& a) {
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "strata template: %s\n", st.to_string().c_str());
    return st.code() == ErrorCode::kInvalidArgument || st.code() == ErrorCode::kUnsupported ? 2 : 1;
  };
  chat::ChatRenderOptions opts;
  std::string source;
  if (!a.model.empty()) {
    auto f = gguf::File::open(a.model);
    if (!f.is_ok()) return fail(f.status());
    auto t = (*f)->get_string("tokenizer.chat_template");
    if (!t) return fail(error(ErrorCode::kNotFound, "the model has no tokenizer.chat_template"));
    source = *t;
    opts.bos_token = token_text(**f, "tokenizer.ggml.bos_token_id");
    opts.eos_token = token_text(**f, "tokenizer.ggml.eos_token_id");
  } else {
    auto t = read_file_text(a.file);
    if (!t.is_ok()) return fail(t.status());
    source = *t;
  }
  auto messages = read_json(a.messages);
  if (!messages.is_ok()) return fail(messages.status());
  if (!messages->is_array()) return fail(error(ErrorCode::kInvalidArgument, "--messages must hold a JSON array"));
  opts.messages = *messages;
  if (!a.tools.empty()) {
    auto tools = read_json(a.tools);
    if (!tools.is_ok()) return fail(tools.status());
    opts.tools = *tools;
  }
  if (!a.kwargs.empty()) {
    auto kw = nlohmann::ordered_json::parse(a.kwargs, nullptr, false);
    if (kw.is_discarded() || !kw.is_object()) return fail(error(ErrorCode::kInvalidArgument, "--kwargs must be a JSON object"));
    opts.extra = kw;
  }
  opts.add_generation_prompt = a.add_generation_prompt;
  auto tmpl = chat::Template::parse(source);
  if (!tmpl.is_ok()) return fail(tmpl.status());
  auto out = chat::render_chat(*tmpl, opts);
  if (!out.is_ok()) return fail(out.status());
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}

}  // namespace

void register_template(CLI::App& app) {
  auto a = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("template", "Render a chat template for a list of messages");
  auto* m = cmd->add_option("-m,--model", a->model, "GGUF model whose chat template to use");
  cmd->add_option("--file", a->file, "Template file (Jinja)")->excludes(m);
  cmd->add_option("--messages", a->messages, "JSON file with the messages array")->required();
  cmd->add_option("--tools", a->tools, "JSON file with the tools array (OpenAI format)");
  cmd->add_flag("--add-generation-prompt", a->add_generation_prompt, "End with the assistant's turn opening");
  cmd->add_option("--kwargs", a->kwargs, "Extra template variables as a JSON object, e.g. {\"enable_thinking\":false}");
  cmd->callback([a] {
    if (a->model.empty() == a->file.empty()) {
      std::fprintf(stderr, "strata template: give -m MODEL or --file TEMPLATE\n");
      set_exit_code(2);
      return;
    }
    set_exit_code(run_template(*a));
  });
}

}  // namespace strata::cli
