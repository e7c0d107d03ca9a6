// Renders every template in shared/testdata/templates over a matrix of chats through Strata
// and through python3-jinja2 configured as Hugging Face transformers (testdata/jinja_reference.py),
// and asserts the bytes are identical (or that both fail).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "chat/template_chat.h"

namespace strata::chat {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr std::time_t kNow = 1767225600 + 13 * 3600;  // a fixed clock for strftime_now

fs::path source_dir() { return fs::path(__FILE__).parent_path(); }

fs::path templates_dir() {
  if (const char* env = std::getenv("STRATA_TESTDATA")) return fs::path(env) / "templates";
  fs::path root = source_dir().parent_path().parent_path();  // the checkout root
  for (fs::path p :
       {root / ".." / "shared" / "testdata", root / ".." / ".." / "shared" / "testdata"}) {
    if (fs::exists(p / "templates")) return p / "templates";
  }
  return {};
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json tools_json() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather",
      "description": "Get the current weather for a city — «quoted» text.",
      "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
        "required": ["location"]}}},
    {"type": "function", "function": {"name": "search_files",
      "description": "Search files in the repository.",
      "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "description": "Regular expression"},
        "max_results": {"type": "integer", "description": "Limit", "default": 10, "minimum": 1},
        "threshold": {"type": "number", "description": "Score cut-off", "default": 0.25, "maximum": 1e-6},
        "include_hidden": {"type": "boolean", "description": "Dotfiles too", "default": false},
        "glob": {"type": ["string", "null"], "description": "Optional glob", "default": null},
        "paths": {"type": "array", "items": {"type": "string"}, "description": "Folders to search"},
        "options": {"type": "object", "properties": {"case_sensitive": {"type": "boolean"}}}},
        "required": ["query"]}}},
    {"type": "function", "function": {"name": "list_open_tabs", "description": "List the editor tabs.",
      "parameters": {"type": "object", "properties": {}}}}
  ])");
}

json tool_call_turns(bool string_arguments) {
  json args1 = json::parse(R"({"location": "Zürich", "unit": "celsius"})");
  json args2 =
      json::parse(R"({"query": "fn main\\(", "max_results": 3, "paths": ["src", "tests"]})");
  json call1 = {
      {"id", "call_001"},
      {"type", "function"},
      {"function",
       {{"name", "get_weather"}, {"arguments", string_arguments ? json(args1.dump()) : args1}}}};
  json call2 = {
      {"id", "call_002"},
      {"type", "function"},
      {"function",
       {{"name", "search_files"}, {"arguments", string_arguments ? json(args2.dump()) : args2}}}};
  json assistant = {{"role", "assistant"},
                    {"content", string_arguments ? json("Let me check both.") : json(nullptr)},
                    {"tool_calls", json::array({call1, call2})}};
  return json::array({
      {{"role", "system"}, {"content", "You are a coding agent. Use tools when useful."}},
      {{"role", "user"}, {"content", "What's the weather in Zürich, and where is main() defined?"}},
      assistant,
      {{"role", "tool"},
       {"tool_call_id", "call_001"},
       {"name", "get_weather"},
       {"content", "{\"temp\": 21, \"sky\": \"clear\"}"}},
      {{"role", "tool"},
       {"tool_call_id", "call_002"},
       {"name", "search_files"},
       {"content", "src/main.cpp:12: int main() {"}},
      {{"role", "assistant"},
       {"content", "It is 21 °C and clear; main() is in src/main.cpp line 12."}},
      {{"role", "user"}, {"content", "Thanks!"}},
  });
}

struct ChatCase {
  std::string name;
  json messages;
  json tools;                   // null: no tools
  json extra = json::object();  // extra template kwargs
};

// Tools whose parameters are only scalars: some templates (Command R+) cannot render arrays
// or objects without additionalProperties.
json simple_tools_json() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "read_file", "description": "Read a file.",
      "parameters": {"type": "object", "properties": {
        "path": {"type": "string", "description": "File path"},
        "max_lines": {"type": "integer", "description": "Line limit"},
        "mode": {"type": "string", "enum": ["text", "hex"], "description": "How to show bytes"}},
        "required": ["path"]}}}
  ])");
}

// One tool call whose id is 9 alphanumerics (Mistral's rule), content "" (not null).
json single_tool_call_turns() {
  json call = {
      {"id", "a1B2c3D4e"},
      {"type", "function"},
      {"function",
       {{"name", "read_file"}, {"arguments", {{"path", "README.md"}, {"max_lines", 20}}}}}};
  return json::array({
      {{"role", "user"}, {"content", "Summarize README.md."}},
      {{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}},
      {{"role", "tool"},
       {"tool_call_id", "a1B2c3D4e"},
       {"name", "read_file"},
       {"content", "# Strata\nA local LLM server."}},
      {{"role", "assistant"}, {"content", "Strata is a local LLM server."}},
      {{"role", "user"}, {"content", "Thanks."}},
  });
}

std::vector<ChatCase> chat_cases() {
  std::vector<ChatCase> cases;
  cases.push_back(
      {"system_user",
       json::array(
           {{{"role", "system"}, {"content", "You are a helpful assistant.\nBe brief."}},
            {{"role", "user"},
             {"content", "Hello! Café 日本語 😀 \"quotes\" 'single' <tag> & \\ backslash"}}})});
  cases.push_back(
      {"multi_turn", json::array({{{"role", "user"}, {"content", "Write a haiku about caches."}},
                                  {{"role", "assistant"},
                                   {"content",
                                    "Blocks stay warm in RAM,\nprefix found, no work again "
                                    "—\ntokens flow like streams."}},
                                  {{"role", "user"}, {"content", "  Now one about SSDs.  "}}})});
  cases.push_back({"tools_defined",
                   json::array({{{"role", "system"}, {"content", "You can call tools."}},
                                {{"role", "user"}, {"content", "Find TODOs in src/."}}}),
                   tools_json()});
  cases.push_back({"empty_tools", json::array({{{"role", "user"}, {"content", "No tools today."}}}),
                   json::array()});
  cases.push_back({"tool_calls_object_args", tool_call_turns(false), tools_json()});
  cases.push_back({"tool_calls_string_args", tool_call_turns(true), tools_json()});
  cases.push_back({"single_tool_call", single_tool_call_turns(), simple_tools_json()});
  // firefunction-v2 reads `functions` (a JSON string) and `datetime` kwargs.
  cases.push_back({"functions_kwargs",
                   json::array({{{"role", "user"}, {"content", "Weather in Oslo?"}}}),
                   simple_tools_json(),
                   {{"functions", simple_tools_json().dump(2)}, {"datetime", "2026-01-01"}}});
  cases.push_back({"reasoning_content",
                   json::array({{{"role", "user"}, {"content", "What is 17 * 3?"}},
                                {{"role", "assistant"},
                                 {"content", "51"},
                                 {"reasoning_content", "17 * 3 = 51. Double-check: 17*3 = 51."}},
                                {{"role", "user"}, {"content", "And 51 / 3?"}}})});
  cases.push_back(
      {"think_in_content",
       json::array({{{"role", "system"}, {"content", "Think step by step."}},
                    {{"role", "user"}, {"content", "Is 91 prime?"}},
                    {{"role", "assistant"},
                     {"content", "<think>\n91 = 7 * 13.\n</think>\n\nNo, 91 = 7 × 13."}},
                    {{"role", "user"}, {"content", "And 97?"}}})});
  cases.push_back(
      {"reasoning_with_tools",
       json::array({{{"role", "user"}, {"content", "Open README.md and summarize."}},
                    {{"role", "assistant"},
                     {"content", ""},
                     {"reasoning_content", "I should read the file first."},
                     {"tool_calls", json::array({{{"id", "Xy12Zw34q"},
                                                  {"type", "function"},
                                                  {"function",
                                                   {{"name", "read_file"},
                                                    {"arguments", {{"path", "README.md"}}}}}}})}},
                    {{"role", "tool"},
                     {"tool_call_id", "Xy12Zw34q"},
                     {"name", "read_file"},
                     {"content", "Strata: a local server."}},
                    {{"role", "assistant"},
                     {"content", "It describes a local server."},
                     {"reasoning_content", "The file is short."}}}),
       simple_tools_json()});
  cases.push_back(
      {"assistant_last", json::array({{{"role", "system"}, {"content", "Answer in one word."}},
                                      {{"role", "user"}, {"content", "Capital of France?"}},
                                      {{"role", "assistant"}, {"content", "Paris"}}})});
  // Template-specific kwargs several templates read (reasoning effort, Llama builtin tools, ...).
  cases.push_back({"kwargs_variety",
                   json::array({{{"role", "system"}, {"content", "You are a careful agent."}},
                                {{"role", "user"}, {"content", "Plan a refactor."}},
                                {{"role", "assistant"},
                                 {"content", "Step 1: tests."},
                                 {"reasoning_content", "Tests first."}},
                                {{"role", "user"}, {"content", "Go on."}}}),
                   simple_tools_json(),
                   {{"reasoning_effort", "high"},
                    {"thinking", true},
                    {"builtin_tools", json::array({"wolfram_alpha", "brave_search"})},
                    {"tools_in_user_message", false},
                    {"keep_past_thinking", true},
                    {"preserve_thinking", true},
                    {"model_identity", "You are Strata-test."},
                    {"date_string", "01 Jan 2026"},
                    {"add_vision_id", true}}});
  cases.push_back(
      {"content_parts",
       json::array({{{"role", "system"},
                     {"content", json::array({{{"type", "text"}, {"text", "You are terse."}}})}},
                    {{"role", "user"},
                     {"content", json::array({{{"type", "text"}, {"text", "First part."}},
                                              {{"type", "text"}, {"text", "Second part."}}})}}})});
  return cases;
}

struct Case {
  std::string template_name;
  std::string label;
  ChatRenderOptions options;
};

std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  size_t from = i > 60 ? i - 60 : 0;
  std::ostringstream os;
  os << "first difference at byte " << i << "\n  strata:    " << json(a.substr(from, 160)).dump()
     << "\n  reference: " << json(b.substr(from, 160)).dump();
  return os.str();
}

TEST(TemplateReference, EveryTemplateMatchesJinja2) {
  fs::path dir = templates_dir();
  if (dir.empty()) GTEST_SKIP() << "shared/testdata/templates not found (set STRATA_TESTDATA)";
  if (std::system("/usr/bin/python3 -c 'import jinja2' 2>/dev/null") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with jinja2 (python3-jinja2) is needed for the reference";
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());

  json spec = {{"templates", json::object()}, {"cases", json::array()}};
  std::vector<Case> cases;
  for (const auto& f : files) {
    std::string name = f.stem().string();
    spec["templates"][name] = fs::absolute(f).string();
    for (const auto& chat : chat_cases()) {
      for (int agp = 0; agp < 2; ++agp) {
        for (int thinking = 0; thinking < 2; ++thinking) {
          Case c;
          c.template_name = name;
          c.label = chat.name + (agp ? " +gen" : " -gen") + (thinking ? " +think" : " -think");
          c.options.messages = chat.messages;
          c.options.tools = chat.tools;
          c.options.add_generation_prompt = agp != 0;
          c.options.bos_token = "<s>";
          c.options.eos_token = "</s>";
          c.options.extra = chat.extra;
          c.options.extra["enable_thinking"] = thinking != 0;
          c.options.now = kNow;
          spec["cases"].push_back(
              {{"template", name}, {"context", build_chat_context(c.options)}, {"now", kNow}});
          cases.push_back(std::move(c));
        }
      }
    }
  }
  // STRATA_JINJA_REF_DIR keeps the reference's input and output there for inspection.
  const char* keep_dir = std::getenv("STRATA_JINJA_REF_DIR");
  fs::path tmp =
      keep_dir ? fs::path(keep_dir)
               : fs::temp_directory_path() / ("strata_jinja_ref_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  { std::ofstream(tmp / "in.json") << spec.dump(); }
  std::string cmd = "/usr/bin/python3 '" +
                    (source_dir() / "testdata" / "jinja_reference.py").string() + "' '" +
                    (tmp / "in.json").string() + "' '" + (tmp / "out.json").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  json expected = json::parse(read_file(tmp / "out.json"));
  if (!keep_dir) fs::remove_all(tmp);
  ASSERT_EQ(expected.size(), cases.size());

  std::map<std::string, std::pair<int, int>> per_template;  // passed, total
  std::map<std::string, int> reference_errors;
  std::map<std::string, Result<Template>> parsed;
  for (const auto& f : files) parsed.emplace(f.stem().string(), Template::parse(read_file(f)));
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const json& want = expected[i];
    const Result<Template>& tmpl = parsed.at(c.template_name);
    Result<std::string> got =
        tmpl.is_ok() ? render_chat(*tmpl, c.options) : Result<std::string>(tmpl.status());
    bool ok;
    if (want["ok"].get<bool>()) {
      ok = got.is_ok() && *got == want["text"].get<std::string>();
      if (!got.is_ok()) {
        ADD_FAILURE() << c.template_name << " [" << c.label
                      << "]: strata failed: " << got.status().to_string();
      } else if (!ok) {
        ADD_FAILURE() << c.template_name << " [" << c.label
                      << "]: " << first_difference(*got, want["text"].get<std::string>());
      }
    } else {
      ++reference_errors[c.template_name];
      const std::string why = want["error"].get<std::string>();
      ok = !got.is_ok();
      if (!ok) {
        ADD_FAILURE() << c.template_name << " [" << c.label << "]: reference failed (" << why
                      << ") but strata rendered";
      } else if (why.rfind("TemplateError: ", 0) == 0) {
        // raise_exception(msg): Strata must fail for the same reason, with the same message.
        std::string msg = why.substr(15);
        ok = got.status().message().find(msg) != std::string::npos;
        if (!ok) {
          ADD_FAILURE() << c.template_name << " [" << c.label << "]: reference raised '" << msg
                        << "' but strata failed with: " << got.status().to_string();
        }
      }
      if (std::getenv("STRATA_JINJA_SHOW_ERRORS")) {
        std::printf("%s [%s]\n  reference: %s\n  strata:    %s\n", c.template_name.c_str(),
                    c.label.c_str(), why.c_str(), got.status().to_string().c_str());
      }
    }
    auto& [p, t] = per_template[c.template_name];
    p += ok;
    ++t;
    passed += ok;
  }
  std::ostringstream summary;
  for (const auto& [name, pt] : per_template) {
    summary << "  " << name << ": " << pt.first << "/" << pt.second;
    if (reference_errors.count(name))
      summary << " (" << reference_errors[name] << " expected errors)";
    summary << "\n";
  }
  std::printf("template reference comparison: %d/%zu cases match\n%s", passed, cases.size(),
              summary.str().c_str());
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

}  // namespace
}  // namespace strata::chat
