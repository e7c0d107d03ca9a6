// Trace JSON reading/writing and the seeded generator. The generator's randomness is its own
// (splitmix64), not <random>'s distributions, whose outputs differ between standard libraries.
#include "agentbench/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace strata::agentbench {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Log-uniform: tool results are mostly small with a long tail (a whole file read).
  int log_uniform(int lo, int hi) {
    return static_cast<int>(std::exp(uniform(std::log(std::max(lo, 1)), std::log(std::max(hi, lo + 1)))));
  }

 private:
  uint64_t s_;
};

constexpr const char* kWords[] = {
    "the", "file", "function", "return", "value", "error", "test", "build", "module", "request",
    "cache", "block", "token", "server", "client", "update", "check", "path", "config", "string",
    "index", "buffer", "thread", "result", "status", "input", "output", "message", "tool", "call",
    "read", "write", "line", "code", "type", "class", "struct", "field", "list", "map",
    "when", "then", "with", "from", "into", "each", "must", "should", "never", "always",
    "user", "agent", "task", "step", "change", "commit", "branch", "review", "patch", "diff",
    "search", "match", "pattern", "source", "header", "include", "option", "default", "number", "count",
    "size", "length", "memory", "disk", "layer", "model", "prompt", "system", "history", "summary",
    "parse", "format", "json", "schema", "object", "array", "key", "name", "run", "command",
    "shell", "output", "exit", "signal", "timeout", "retry", "query", "table", "row", "column",
};
constexpr int kNumWords = sizeof(kWords) / sizeof(kWords[0]);

constexpr const char* kToolNames[] = {
    "read_file", "edit_file", "write_file", "bash", "grep_search", "glob", "list_dir",
    "web_fetch", "todo_write", "task", "notebook_edit", "skill", "tool_search", "ask_user",
};
constexpr int kNumToolNames = sizeof(kToolNames) / sizeof(kToolNames[0]);

// Words and their measured token counts (" word" and the sentence end ".\n" tokenize on
// their own under byte-level BPE pre-tokenizers, so counts add up).
class TextMaker {
 public:
  explicit TextMaker(const TokenCounter& count) {
    for (int i = 0; i < kNumWords; ++i) word_tokens_[i] = std::max(1, count(std::string(" ") + kWords[i]));
    end_tokens_ = std::max(1, count(".\n"));
  }
  // About `num_tokens` tokens of sentences; returns the predicted count in *predicted.
  std::string make(Rng& rng, int num_tokens, int* predicted = nullptr) const {
    std::string out;
    int n = 0, in_sentence = 0;
    while (n < num_tokens) {
      if (in_sentence >= 6 && (rng.below(8) == 0 || in_sentence > 18)) {
        out += ".\n";
        n += end_tokens_;
        in_sentence = 0;
        continue;
      }
      const int w = rng.below(kNumWords);
      out += ' ';
      out += kWords[w];
      n += word_tokens_[w];
      ++in_sentence;
    }
    if (predicted) *predicted = n;
    return out;
  }

 private:
  int word_tokens_[kNumWords] = {};
  int end_tokens_ = 1;
};

Json tool_schema(Rng& rng) {
  Json props = Json::object();
  const int n = 1 + rng.below(4);
  for (int i = 0; i < n; ++i) {
    props[fmt::format("{}_{}", kWords[rng.below(kNumWords)], i)] = {{"type", i % 2 ? "integer" : "string"}};
  }
  return {{"type", "object"}, {"properties", props}, {"required", Json::array({props.begin().key()})}};
}

std::string billing_line(Rng& rng) {
  return fmt::format("x-anthropic-billing-header: cc_version=2.1.332.{:03x}; cc_entrypoint=cli; cch={:05x};",
                     rng.below(4096), rng.below(1 << 20));
}

struct SessionShape {
  std::string id, kind, parent;
  double start_s;
  int num_turns;
  bool compacts;
};

TraceSession make_session(const GenOptions& o, const Trace& t, const TextMaker& text, const SessionShape& s,
                          uint64_t seed) {
  Rng rng(seed);
  TraceSession out{s.id, s.kind, s.parent, s.start_s, {}};
  for (int i = 0; i < s.num_turns; ++i) {
    TraceTurn turn;
    turn.max_tokens = o.max_tokens;
    turn.think_s = i == 0 ? 0 : rng.uniform(o.think_min_s, o.think_max_s);
    if (o.billing_line) turn.billing = billing_line(rng);
    if (i == 0) {
      // The date reminder sits in the first user message, as Claude Code and qwen-code put it.
      std::string task = fmt::format("<system-reminder>\nThe current date is 2026-11-{:02d}.\n</system-reminder>\n",
                                     1 + rng.below(28));
      task += s.kind == "subagent" ? "Sub-agent task:" : "Task:";
      task += text.make(rng, o.task_tokens);
      turn.messages.push_back({"user", task, "", "", ""});
    } else {
      if (s.compacts && i == o.compact_at_turn) {
        turn.compact = "Summary of the conversation so far:" + text.make(rng, o.summary_tokens);
      }
      // The previous reply: some text, then a tool call; this turn brings the tool's result.
      const std::string call_id = fmt::format("call_{}_{}", s.id, i);
      const TraceTool& tool = t.tools[static_cast<size_t>(rng.below(static_cast<int>(t.tools.size())))];
      Json args = Json::object();
      for (auto& [k, v] : tool.parameters["properties"].items()) {
        args[k] = v["type"] == "integer" ? Json(rng.below(1000)) : Json(kWords[rng.below(kNumWords)]);
      }
      turn.messages.push_back({"assistant", text.make(rng, o.assistant_tokens), call_id, tool.name, args.dump()});
      const int result_tokens = rng.log_uniform(o.tool_result_min_tokens, o.tool_result_max_tokens);
      turn.messages.push_back({"tool", text.make(rng, result_tokens), call_id, tool.name, ""});
    }
    out.turns.push_back(std::move(turn));
  }
  return out;
}

}  // namespace

int estimate_tokens(std::string_view text) { return static_cast<int>((text.size() + 3) / 4); }

Trace generate_trace(const GenOptions& o, const TokenCounter& count) {
  const TextMaker text(count);
  Rng rng(o.seed);
  Trace t;
  t.name = o.name;
  t.seed = o.seed;
  t.restart_after_turn = o.restart_after_turn;
  // CLIENTS.md §2.5: tool JSON is a little larger than the system prompt; split 45/55.
  int system_tokens = 0;
  t.system = "You are a coding agent. Follow the rules below." + text.make(rng, o.prefix_tokens * 45 / 100, &system_tokens);
  const int num_tools = std::clamp(o.num_tools, 1, kNumToolNames);
  int tools_tokens = 0;
  for (int i = 0; i < num_tools; ++i) {
    TraceTool tool{kToolNames[i], "", tool_schema(rng)};
    const int schema_tokens = count(tool.parameters.dump()) + count(tool.name);
    int desc_tokens = 0;
    tool.description = text.make(rng, std::max(8, (o.prefix_tokens - system_tokens) / num_tools - schema_tokens), &desc_tokens);
    tools_tokens += desc_tokens + schema_tokens;
    t.tools.push_back(std::move(tool));
  }
  t.prefix_tokens = system_tokens + tools_tokens;

  std::vector<SessionShape> shapes;
  for (int s = 0; s < o.num_sessions; ++s) {
    const std::string id = fmt::format("main-{}", s);
    shapes.push_back({id, "main", "", s * o.session_stagger_s, o.turns_per_session, o.compact_at_turn > 0});
    if (o.subagent_after_turn >= 0 && o.subagent_after_turn < o.turns_per_session) {
      // Starts about when its parent reaches the fork turn (think times average (min+max)/2).
      const double fork_s = s * o.session_stagger_s + (o.subagent_after_turn + 1) * (o.think_min_s + o.think_max_s) / 2;
      shapes.push_back({fmt::format("sub-{}", s), "subagent", id, fork_s, o.subagent_turns, false});
    }
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    t.sessions.push_back(make_session(o, t, text, shapes[i], o.seed * 1000003ull + i + 1));
  }
  return t;
}

Result<GenOptions> preset_options(const std::string& name) {
  GenOptions o;
  o.name = name;
  if (name == "smoke") {
    o.num_sessions = 2; o.turns_per_session = 4; o.prefix_tokens = 1500; o.num_tools = 4;
    o.task_tokens = 40; o.tool_result_min_tokens = 20; o.tool_result_max_tokens = 200;
    o.assistant_tokens = 15; o.max_tokens = 8; o.think_min_s = 0.05; o.think_max_s = 0.2;
    o.session_stagger_s = 0.1; o.subagent_after_turn = 1; o.subagent_turns = 2; o.compact_at_turn = 3;
    o.summary_tokens = 60;
  } else if (name == "agent-4x20") {
    o.num_sessions = 4; o.turns_per_session = 20; o.prefix_tokens = 16000; o.subagent_after_turn = 5;
    o.subagent_turns = 6; o.compact_at_turn = 15; o.think_min_s = 0.5; o.think_max_s = 3.0;
  } else if (name == "restart") {
    o.num_sessions = 2; o.turns_per_session = 6; o.prefix_tokens = 4000; o.restart_after_turn = 2;
    o.tool_result_max_tokens = 600;
  } else {
    return error(ErrorCode::kInvalidArgument,
                 fmt::format("unknown preset '{}': use smoke, agent-4x20 or restart", name));
  }
  return o;
}

// ---- JSON ----

Json to_json(const Trace& t) {
  Json tools = Json::array();
  for (const auto& tool : t.tools) {
    tools.push_back({{"name", tool.name}, {"description", tool.description}, {"parameters", tool.parameters}});
  }
  Json sessions = Json::array();
  for (const auto& s : t.sessions) {
    Json turns = Json::array();
    for (const auto& turn : s.turns) {
      Json msgs = Json::array();
      for (const auto& m : turn.messages) {
        Json jm = {{"role", m.role}, {"content", m.content}};
        if (!m.tool_call_id.empty()) jm["tool_call_id"] = m.tool_call_id;
        if (!m.tool_name.empty()) jm["tool_name"] = m.tool_name;
        if (!m.tool_arguments.empty()) jm["tool_arguments"] = m.tool_arguments;
        msgs.push_back(std::move(jm));
      }
      Json jt = {{"think_s", turn.think_s}, {"max_tokens", turn.max_tokens}, {"messages", msgs}};
      if (!turn.billing.empty()) jt["billing"] = turn.billing;
      if (!turn.compact.empty()) jt["compact"] = turn.compact;
      turns.push_back(std::move(jt));
    }
    Json js = {{"id", s.id}, {"kind", s.kind}, {"start_s", s.start_s}, {"turns", turns}};
    if (!s.parent.empty()) js["parent"] = s.parent;
    sessions.push_back(std::move(js));
  }
  return {{"format", "strata-agent-trace/1"}, {"name", t.name}, {"seed", t.seed}, {"system", t.system},
          {"tools", tools}, {"prefix_tokens", t.prefix_tokens}, {"restart_after_turn", t.restart_after_turn},
          {"sessions", sessions}};
}

Result<Trace> trace_from_json(const Json& j) {
  try {
    if (j.value("format", "") != "strata-agent-trace/1") {
      return error(ErrorCode::kInvalidArgument, "not a strata agent trace (\"format\" must be \"strata-agent-trace/1\")");
    }
    Trace t;
    t.name = j.value("name", "");
    t.seed = j.value("seed", uint64_t{0});
    t.system = j.at("system").get<std::string>();
    t.prefix_tokens = j.value("prefix_tokens", 0);
    t.restart_after_turn = j.value("restart_after_turn", -1);
    for (const auto& jt : j.at("tools")) {
      t.tools.push_back({jt.at("name"), jt.value("description", ""), jt.value("parameters", Json::object())});
    }
    for (const auto& js : j.at("sessions")) {
      TraceSession s{js.at("id"), js.value("kind", "main"), js.value("parent", ""), js.value("start_s", 0.0), {}};
      for (const auto& jt : js.at("turns")) {
        TraceTurn turn;
        turn.think_s = jt.value("think_s", 0.0);
        turn.max_tokens = jt.value("max_tokens", 16);
        turn.billing = jt.value("billing", "");
        turn.compact = jt.value("compact", "");
        for (const auto& jm : jt.at("messages")) {
          turn.messages.push_back({jm.at("role"), jm.value("content", ""), jm.value("tool_call_id", ""),
                                   jm.value("tool_name", ""), jm.value("tool_arguments", "")});
        }
        s.turns.push_back(std::move(turn));
      }
      t.sessions.push_back(std::move(s));
    }
    return t;
  } catch (const std::exception& e) {
    return error(ErrorCode::kInvalidArgument, fmt::format("bad trace JSON: {}", e.what()));
  }
}

Result<Trace> load_trace(const std::string& path) {
  std::ifstream f(path);
  if (!f) return error(ErrorCode::kNotFound, fmt::format("cannot open trace '{}'", path));
  std::stringstream ss;
  ss << f.rdbuf();
  const Json j = Json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return error(ErrorCode::kInvalidArgument, fmt::format("'{}' is not JSON", path));
  return trace_from_json(j);
}

}  // namespace strata::agentbench
