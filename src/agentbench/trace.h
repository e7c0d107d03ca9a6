// Agent traces: the JSON format replayed by `strata bench-agent`, and a deterministic
// generator shaped like coding-agent traffic (../shared/CLIENTS.md: 8-20k-token shared
// system prompt + tools, a history that grows with tool calls and results, sub-agents,
// compaction, a per-request billing line).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata::agentbench {

using Json = nlohmann::json;

// One message in a dialect-neutral form; replay turns it into OpenAI or Anthropic JSON.
struct TraceMessage {
  std::string role;  // "user", "assistant" or "tool"
  std::string content;
  // assistant tool call (empty name: none); tool result: tool_call_id names the call.
  std::string tool_call_id;
  std::string tool_name;
  std::string tool_arguments;  // JSON object text
};

struct TraceTurn {
  double think_s = 0;         // user/tool think time before this request
  std::string billing;        // Claude Code's per-request system line (empty: none)
  std::string compact;        // non-empty: history is replaced by this summary first
  std::vector<TraceMessage> messages;  // appended to the history before the request
  int max_tokens = 16;
};

struct TraceSession {
  std::string id;
  std::string kind;    // "main" or "subagent"
  std::string parent;  // subagent: the session it forks from
  double start_s = 0;  // when its first turn may start, from the start of the run
  std::vector<TraceTurn> turns;
};

struct TraceTool {
  std::string name;
  std::string description;
  Json parameters;  // JSON schema
};

struct Trace {
  std::string name;
  uint64_t seed = 0;
  std::string system;  // the shared system prompt (the billing line goes before it)
  std::vector<TraceTool> tools;
  int prefix_tokens = 0;       // system + tools, as counted by the generator's tokenizer
  int restart_after_turn = -1; // >= 0: every session runs turns [0, k], then the server restarts
  std::vector<TraceSession> sessions;
};

Json to_json(const Trace& t);
Result<Trace> trace_from_json(const Json& j);
Result<Trace> load_trace(const std::string& path);

// Counts the tokens of a text; the generator picks words by their measured counts.
using TokenCounter = std::function<int(std::string_view)>;
// ~4 characters a token: what English BPE vocabularies average, used when no model is given.
int estimate_tokens(std::string_view text);

struct GenOptions {
  std::string name = "custom";
  uint64_t seed = 1;
  int num_sessions = 2;
  int turns_per_session = 4;
  int prefix_tokens = 16000;      // system prompt + tool definitions
  int num_tools = 10;
  int task_tokens = 150;          // first user message of a session
  int tool_result_min_tokens = 50;
  int tool_result_max_tokens = 1500;
  int assistant_tokens = 40;      // text before each tool call
  int max_tokens = 16;            // decode length asked for
  double think_min_s = 0.2;
  double think_max_s = 1.5;
  double session_stagger_s = 0.5; // main sessions start this far apart
  int subagent_after_turn = -1;   // >= 0: one sub-agent per main session forks after this turn
  int subagent_turns = 3;
  int compact_at_turn = -1;       // >= 0: that turn of main sessions starts with a compaction
  int summary_tokens = 400;
  bool billing_line = true;
  int restart_after_turn = -1;
};

Trace generate_trace(const GenOptions& o, const TokenCounter& count);

// Named presets: smoke, agent-4x20, restart. Sizes can be overridden after the lookup.
Result<GenOptions> preset_options(const std::string& name);

}  // namespace strata::agentbench
