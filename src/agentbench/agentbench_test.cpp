// Generator determinism and shape, request bodies per dialect, /metrics parsing, summaries,
// and a replay against an in-process fake server speaking both dialects.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <set>
#include <thread>

#include "agentbench/replay.h"
#include "agentbench/report.h"
#include "agentbench/trace.h"

namespace strata::agentbench {
namespace {

Trace smoke(uint64_t seed = 7) {
  auto o = preset_options("smoke");
  EXPECT_TRUE(o.is_ok());
  GenOptions g = o.value();
  g.seed = seed;
  return generate_trace(g, estimate_tokens);
}

TEST(AgentTrace, SameSeedSameTraceOtherSeedOtherTrace) {
  EXPECT_EQ(to_json(smoke(7)).dump(), to_json(smoke(7)).dump());
  EXPECT_NE(to_json(smoke(7)).dump(), to_json(smoke(8)).dump());
}

TEST(AgentTrace, JsonRoundTrip) {
  const Trace t = smoke();
  auto back = trace_from_json(to_json(t));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(to_json(back.value()).dump(), to_json(t).dump());
  EXPECT_FALSE(trace_from_json(Json{{"format", "other"}}).is_ok());
}

TEST(AgentTrace, ShapeOfSmoke) {
  const Trace t = smoke();
  // Prefix near the asked size under the counter it was generated with.
  EXPECT_NEAR(t.prefix_tokens, 1500, 150);
  int num_main = 0, num_sub = 0, num_compact = 0;
  for (const auto& s : t.sessions) {
    (s.kind == "main" ? num_main : num_sub)++;
    if (s.kind == "subagent") {
      EXPECT_FALSE(s.parent.empty());
    }
    std::set<std::string> billing;
    for (size_t i = 0; i < s.turns.size(); ++i) {
      const auto& turn = s.turns[i];
      billing.insert(turn.billing);
      if (!turn.compact.empty()) ++num_compact;
      if (i == 0) {
        ASSERT_EQ(turn.messages.size(), 1u);
        EXPECT_EQ(turn.messages[0].role, "user");
      } else {
        ASSERT_EQ(turn.messages.size(), 2u);
        EXPECT_EQ(turn.messages[0].tool_call_id, turn.messages[1].tool_call_id);
        EXPECT_GT(turn.think_s, 0);
      }
    }
    EXPECT_EQ(billing.size(), s.turns.size()) << "the billing line changes per request";
  }
  EXPECT_EQ(num_main, 2);
  EXPECT_EQ(num_sub, 2);
  EXPECT_EQ(num_compact, 2);
}

TEST(AgentTrace, PresetsAndCounter) {
  EXPECT_FALSE(preset_options("nope").is_ok());
  ASSERT_TRUE(preset_options("agent-4x20").is_ok());
  ASSERT_TRUE(preset_options("restart").is_ok());
  EXPECT_GE(preset_options("restart").value().restart_after_turn, 0);
  // A counter that says 3 tokens a word makes the system prompt a third as many words.
  GenOptions g = preset_options("smoke").value();
  auto words = [](std::string_view s) {
    int n = 0;
    for (char c : s) n += c == ' ';
    return n;
  };
  const Trace one = generate_trace(g, [&](std::string_view s) { return std::max(1, words(s)); });
  const Trace three = generate_trace(g, [&](std::string_view s) { return 3 * std::max(1, words(s)); });
  EXPECT_NEAR(static_cast<double>(words(one.system)) / words(three.system), 3.0, 0.3);
}

TEST(AgentTrace, RequestBodies) {
  const Trace t = smoke();
  const auto& s = t.sessions[0];
  std::vector<TraceMessage> history;
  for (int i = 0; i < 2; ++i) for (const auto& m : s.turns[i].messages) history.push_back(m);
  ReplayOptions o;
  Json oa = request_body(t, history, s.turns[1], o);
  EXPECT_EQ(oa["messages"][0]["role"], "system");
  EXPECT_EQ(oa["messages"][0]["content"], t.system);
  EXPECT_EQ(oa["messages"][2]["tool_calls"][0]["id"], s.turns[1].messages[0].tool_call_id);
  EXPECT_EQ(oa["messages"][3]["role"], "tool");
  EXPECT_EQ(oa["tools"].size(), t.tools.size());
  EXPECT_TRUE(oa["stream_options"]["include_usage"]);
  o.dialect = Dialect::kAnthropic;
  Json an = request_body(t, history, s.turns[1], o);
  EXPECT_EQ(an["system"][0]["text"], s.turns[1].billing);
  EXPECT_EQ(an["system"][1]["text"], t.system);
  EXPECT_EQ(an["messages"][1]["content"][1]["type"], "tool_use");
  EXPECT_EQ(an["messages"][2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(an["tools"][0]["input_schema"], t.tools[0].parameters);
}

TEST(AgentTrace, ParseMetrics) {
  const auto m = parse_metrics(
      "# HELP x\nstrata_kv_device_blocks{state=\"used\"} 12\nstrata_kv_device_blocks{state=\"total\"} 64\n"
      "strata_kv_tier_bytes{tier=\"disk\"} 4096\nstrata_cached_prompt_tokens_total{tier=\"host\"} 77\n", 1.5);
  EXPECT_EQ(m.t_s, 1.5);
  EXPECT_EQ(m.device_blocks_used, 12);
  EXPECT_EQ(m.device_blocks_total, 64);
  EXPECT_EQ(m.disk_bytes, 4096);
  EXPECT_EQ(m.cached_host, 77);
  EXPECT_EQ(m.host_bytes, 0);
}

TEST(AgentTrace, Summary) {
  ReplayResult r;
  auto rec = [](std::string s, int turn, int phase, double start, double ttft, int prompt, int cached) {
    RequestRecord q;
    q.session_id = s; q.turn_idx = turn; q.phase = phase; q.start_s = start; q.ttft_s = ttft;
    q.prompt_tokens = prompt; q.cached_tokens = cached; q.ok = true;
    return q;
  };
  r.requests = {rec("a", 0, 0, 0, 2.0, 1000, 0), rec("b", 0, 0, 0.1, 1.0, 1000, 900),
                rec("a", 1, 0, 3, 0.2, 1200, 1000), rec("a", 2, 1, 9, 0.5, 1400, 1100),
                rec("a", 3, 1, 12, 0.3, 1600, 1400)};
  const Summary s = summarize(r);
  EXPECT_EQ(s.prompt_tokens, 6200);
  EXPECT_EQ(s.cached_tokens, 4400);
  EXPECT_NEAR(s.cache_efficiency, 4400.0 / 6200, 1e-12);
  EXPECT_DOUBLE_EQ(s.median_ttft_first_s, 1.5);
  EXPECT_DOUBLE_EQ(s.median_ttft_later_s, 0.3);
  EXPECT_DOUBLE_EQ(s.median_ttft_after_restart_s, 0.5);
  ASSERT_EQ(s.per_turn.size(), 4u);
  EXPECT_NEAR(s.per_turn[0].cache_efficiency, 0.45, 1e-12);
}

// A fake server: every request gets 3 streamed deltas and a usage with 64 cached tokens.
TEST(AgentTrace, ReplayAgainstFakeServer) {
  httplib::Server srv;
  std::atomic<int> num_requests{0};
  srv.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
  srv.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    ++num_requests;
    EXPECT_TRUE(Json::parse(req.body)["stream"]);
    std::string sse;
    for (const char* piece : {"a", "b", "c"}) {
      sse += "data: " + Json{{"choices", {{{"index", 0}, {"delta", {{"content", piece}}}}}}}.dump() + "\n\n";
    }
    sse += "data: " + Json{{"choices", Json::array()},
                           {"usage", {{"prompt_tokens", 300}, {"completion_tokens", 3},
                                      {"prompt_tokens_details", {{"cached_tokens", 64}}}}}}.dump() + "\n\n";
    sse += "data: [DONE]\n\n";
    res.set_content(sse, "text/event-stream");
  });
  srv.Post("/v1/messages", [&](const httplib::Request&, httplib::Response& res) {
    ++num_requests;
    std::string sse = "event: message_start\ndata: " +
        Json{{"type", "message_start"}, {"message", {{"usage", {{"input_tokens", 236}, {"cache_read_input_tokens", 64}}}}}}.dump() + "\n\n";
    sse += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n";
    sse += "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":1}}\n\n";
    res.set_content(sse, "text/event-stream");
  });
  const int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  Trace t = smoke();
  t.restart_after_turn = 1;  // no --restart-cmd: the pause point is crossed without a restart
  ReplayOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  o.think_scale = 0;
  o.quiet = true;
  o.metrics_poll_s = 0;
  size_t num_turns = 0;
  for (const auto& s : t.sessions) num_turns += s.turns.size();
  for (Dialect d : {Dialect::kOpenAI, Dialect::kAnthropic}) {
    o.dialect = d;
    auto r = replay(t, o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r.value().requests.size(), num_turns);
    for (const auto& q : r.value().requests) {
      EXPECT_TRUE(q.ok) << q.error;
      EXPECT_EQ(q.prompt_tokens, 300);
      EXPECT_EQ(q.cached_tokens, 64);
      EXPECT_GE(q.ttft_s, 0);
    }
    EXPECT_GE(r.value().restart_at_s, 0);
  }
  EXPECT_EQ(num_requests.load(), static_cast<int>(2 * num_turns));
  srv.stop();
  th.join();
}

}  // namespace
}  // namespace strata::agentbench
