// Round trip through the real chat templates: testdata/parser_roundtrip.json holds assistant
// turns rendered by python's jinja2 (testdata/gen_parser_roundtrip.py) and cut after the
// generation prompt, i.e. what the model would have written. Each family's parser must give
// back the message the template rendered: reasoning, content and tool calls.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "chat/parser_testing.h"

namespace strata::chat {
namespace {

nlohmann::json load_cases() {
  std::string path = __FILE__;
  path = path.substr(0, path.find_last_of('/')) + "/testdata/parser_roundtrip.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
}

ReasoningMode mode_of(const std::string& s) {
  if (s == "optional") return ReasoningMode::kOptional;
  if (s == "starts_open") return ReasoningMode::kStartsOpen;
  return ReasoningMode::kNone;
}

TEST(TemplateRoundTrip, EveryRenderedTurnParsesBack) {
  const nlohmann::json data = load_cases();
  ASSERT_TRUE(data.is_object());
  ASSERT_GE(data["cases"].size(), 13u);
  for (const auto& c : data["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + " (" + c["template"].get<std::string>() + ")");
    ParserOptions options;
    options.reasoning = mode_of(c["reasoning"]);
    options.tools = data["tools"];
    const std::string family = c["family"];
    const std::string output = c["output"];
    const testing::Run run = testing::run_whole(family, options, output);
    const ParseResult& r = run.result;
    const nlohmann::json& want = c["expected"];
    EXPECT_EQ(r.content, want["content"].get<std::string>());
    EXPECT_EQ(r.reasoning_content, want["reasoning_content"].get<std::string>());
    EXPECT_FALSE(r.incomplete_tool_call);
    EXPECT_FALSE(r.malformed_tool_call);
    ASSERT_EQ(r.tool_calls.size(), want["tool_calls"].size());
    for (size_t i = 0; i < r.tool_calls.size(); ++i) {
      EXPECT_EQ(r.tool_calls[i].name, want["tool_calls"][i]["name"].get<std::string>());
      EXPECT_EQ(nlohmann::json::parse(r.tool_calls[i].arguments), want["tool_calls"][i]["arguments"])
          << r.tool_calls[i].arguments;
    }
    testing::expect_split_invariant(family, options, output);
  }
}

}  // namespace
}  // namespace strata::chat
