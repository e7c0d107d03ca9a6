// Replay: request bodies per dialect, SSE parsing, session threads, the restart pause and the
// /metrics poller.
#include "agentbench/replay.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

namespace strata::agentbench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sleep_s(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

Json openai_message(const TraceMessage& m) {
  if (m.role == "assistant" && !m.tool_name.empty()) {
    return {{"role", "assistant"}, {"content", m.content},
            {"tool_calls", Json::array({{{"id", m.tool_call_id}, {"type", "function"},
                                         {"function", {{"name", m.tool_name}, {"arguments", m.tool_arguments}}}}})}};
  }
  if (m.role == "tool") return {{"role", "tool"}, {"tool_call_id", m.tool_call_id}, {"content", m.content}};
  return {{"role", m.role}, {"content", m.content}};
}

Json anthropic_message(const TraceMessage& m) {
  if (m.role == "assistant" && !m.tool_name.empty()) {
    Json input = Json::parse(m.tool_arguments.empty() ? "{}" : m.tool_arguments, nullptr, false);
    if (input.is_discarded()) input = Json::object();
    return {{"role", "assistant"},
            {"content", Json::array({{{"type", "text"}, {"text", m.content}},
                                     {{"type", "tool_use"}, {"id", m.tool_call_id}, {"name", m.tool_name}, {"input", input}}})}};
  }
  if (m.role == "tool") {
    return {{"role", "user"},
            {"content", Json::array({{{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}}})}};
  }
  return {{"role", m.role}, {"content", m.content}};
}

// Counts free request slots (--concurrency).
class Slots {
 public:
  explicit Slots(int n) : free_(std::max(1, n)) {}
  void acquire() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return free_ > 0; });
    --free_;
  }
  void release() {
    { std::lock_guard lk(mu_); ++free_; }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

struct StreamState {
  Dialect dialect;
  Clock::time_point t0;
  std::string pending;  // bytes after the last complete line
  std::string raw;      // the first bytes, for error messages
  std::vector<double> delta_s;
  // When nothing visible streams (a random-weight model can emit only tokens the server's
  // output parser withholds), the finish event bounds TTFT from above.
  double finish_s = -1;
  int input_tokens = 0, cache_read = 0, cache_creation = 0, prompt_tokens = 0, cached_tokens = 0;
  int completion_tokens = 0;
  std::string error;

  void on_json(const Json& j) {
    if (j.contains("error")) {
      error = j["error"].is_object() ? j["error"].value("message", j["error"].dump()) : j["error"].dump();
      return;
    }
    if (dialect == Dialect::kOpenAI) {
      if (j.contains("choices") && !j["choices"].empty()) {
        const Json& d = j["choices"][0].value("delta", Json::object());
        const bool text = d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty();
        const bool reasoning = d.contains("reasoning_content") && d["reasoning_content"].is_string();
        if (text || reasoning || d.contains("tool_calls")) delta_s.push_back(seconds_since(t0));
        if (finish_s < 0 && j["choices"][0].contains("finish_reason") && !j["choices"][0]["finish_reason"].is_null()) {
          finish_s = seconds_since(t0);
        }
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        const Json& u = j["usage"];
        prompt_tokens = u.value("prompt_tokens", 0);
        completion_tokens = u.value("completion_tokens", 0);
        if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object()) {
          cached_tokens = u["prompt_tokens_details"].value("cached_tokens", 0);
        }
      }
      return;
    }
    const std::string type = j.value("type", "");
    if (type == "content_block_delta") {
      delta_s.push_back(seconds_since(t0));
    } else if (type == "message_start") {
      const Json u = j["message"].value("usage", Json::object());
      input_tokens = u.value("input_tokens", 0);
      cache_read = u.value("cache_read_input_tokens", 0);
      cache_creation = u.value("cache_creation_input_tokens", 0);
    } else if (type == "message_delta" && finish_s < 0) {
      finish_s = seconds_since(t0);
    }
    if (type == "message_delta" && j.contains("usage")) {
      completion_tokens = j["usage"].value("output_tokens", completion_tokens);
      // Some servers only know the prompt's usage at the end.
      input_tokens = j["usage"].value("input_tokens", input_tokens);
      cache_read = j["usage"].value("cache_read_input_tokens", cache_read);
    }
    // Anthropic's input_tokens excludes cached ones.
    prompt_tokens = input_tokens + cache_read + cache_creation;
    cached_tokens = cache_read;
  }

  void feed(const char* data, size_t n) {
    if (raw.size() < 600) raw.append(data, std::min(n, 600 - raw.size()));
    pending.append(data, n);
    size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, pos);
      pending.erase(0, pos + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) != 0) continue;
      std::string payload = line.substr(5);
      if (!payload.empty() && payload[0] == ' ') payload.erase(0, 1);
      if (payload == "[DONE]") continue;
      const Json j = Json::parse(payload, nullptr, false);
      if (!j.is_discarded()) on_json(j);
    }
  }
};

class Replayer {
 public:
  Replayer(const Trace& t, const ReplayOptions& o) : trace_(t), o_(o), slots_(o.concurrency) {
    histories_.resize(t.sessions.size());
  }

  Result<ReplayResult> run() {
    t0_ = Clock::now();
    if (!wait_health()) {
      return error(ErrorCode::kIo, fmt::format("no answer from {}/health within {:.0f} s", o_.url, o_.wait_s));
    }
    std::thread poller;
    if (o_.metrics_poll_s > 0) poller = std::thread([this] { poll_metrics(); });
    const int restart = trace_.restart_after_turn;
    if (restart >= 0) {
      run_phase(0, 0, restart + 1);
      result_.restart_at_s = seconds_since(t0_);
      if (!o_.restart_cmd.empty()) {
        log(fmt::format("restart point: running {}", o_.restart_cmd));
        const int rc = std::system(o_.restart_cmd.c_str());
        if (rc != 0) log(fmt::format("restart command exited {}", rc));
      } else {
        log("restart point reached (no --restart-cmd): continuing");
      }
      if (!wait_health()) {
        stop_ = true;
        if (poller.joinable()) poller.join();
        return error(ErrorCode::kIo, "the server did not come back after the restart");
      }
      run_phase(1, restart + 1, 1 << 30);
    } else {
      run_phase(0, 0, 1 << 30);
    }
    stop_ = true;
    if (poller.joinable()) poller.join();
    result_.wall_s = seconds_since(t0_);
    return std::move(result_);
  }

 private:
  void log(const std::string& s) {
    if (o_.quiet) return;
    std::lock_guard lk(log_mu_);
    std::fprintf(stderr, "%s\n", s.c_str());
  }

  bool wait_health() {
    const auto start = Clock::now();
    while (seconds_since(start) < o_.wait_s) {
      httplib::Client cli(o_.url);
      cli.set_connection_timeout(1);
      cli.set_read_timeout(2);
      if (auto res = cli.Get("/health"); res && res->status == 200) return true;
      sleep_s(0.2);
    }
    return false;
  }

  void sample_metrics() {
    httplib::Client cli(o_.url);
    cli.set_connection_timeout(1);
    cli.set_read_timeout(2);
    if (auto res = cli.Get("/metrics"); res && res->status == 200) {
      MetricsSample s = parse_metrics(res->body, seconds_since(t0_));
      std::lock_guard lk(mu_);
      result_.metrics.push_back(s);
    }
  }

  // Polls until the run ends, then takes a last sample: the tiers as the run left them.
  void poll_metrics() {
    while (!stop_) {
      sample_metrics();
      for (double w = 0; w < o_.metrics_poll_s && !stop_; w += 0.05) sleep_s(0.05);
    }
    sample_metrics();
  }

  void run_phase(int phase, int turn_begin, int turn_end) {
    std::vector<std::thread> threads;
    const auto phase_t0 = Clock::now();
    for (size_t s = 0; s < trace_.sessions.size(); ++s) {
      threads.emplace_back([=, this] {
        const TraceSession& session = trace_.sessions[s];
        if (phase == 0) sleep_s(session.start_s * o_.think_scale - seconds_since(phase_t0));
        const int end = std::min<int>(turn_end, static_cast<int>(session.turns.size()));
        for (int i = turn_begin; i < end; ++i) run_turn(phase, s, i, i > turn_begin || phase > 0);
      });
    }
    for (auto& t : threads) t.join();
  }

  void run_turn(int phase, size_t s, int turn_idx, bool think) {
    const TraceSession& session = trace_.sessions[s];
    const TraceTurn& turn = session.turns[static_cast<size_t>(turn_idx)];
    if (think) sleep_s(turn.think_s * o_.think_scale);
    auto& history = histories_[s];
    if (!turn.compact.empty()) history = {{"user", turn.compact, "", "", ""}};
    for (const auto& m : turn.messages) history.push_back(m);
    const std::string body = request_body(trace_, history, turn, o_, next_request_idx_++).dump();
    RequestRecord r{session.id, session.kind, turn_idx, phase};
    slots_.acquire();
    send(body, &r);
    slots_.release();
    log(fmt::format("[{} turn {}] {} prompt {} cached {} ttft {:.3f}s e2e {:.3f}s{}", session.id, turn_idx,
                    r.ok ? "ok" : "FAIL", r.prompt_tokens, r.cached_tokens, r.ttft_s, r.e2e_s,
                    r.ok ? "" : " " + r.error));
    std::lock_guard lk(mu_);
    result_.requests.push_back(std::move(r));
  }

  void send(const std::string& body, RequestRecord* r) {
    const char* path = o_.dialect == Dialect::kOpenAI ? "/v1/chat/completions" : "/v1/messages";
    for (int attempt = 0;; ++attempt) {
      StreamState st{o_.dialect, Clock::now()};
      r->start_s = seconds_since(t0_);
      httplib::Client cli(o_.url);
      cli.set_connection_timeout(5);
      cli.set_read_timeout(600);
      httplib::Request req;
      req.method = "POST";
      req.path = path;
      req.body = body;
      req.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + o_.api_key},
                     {"x-api-key", o_.api_key}, {"anthropic-version", "2023-06-01"}};
      req.content_receiver = [&st](const char* data, size_t n, uint64_t, uint64_t) {
        st.feed(data, n);
        return true;
      };
      httplib::Response res;
      httplib::Error err = httplib::Error::Success;
      const bool sent = cli.send(req, res, err);
      const bool retryable = (!sent && st.delta_s.empty()) || (sent && (res.status == 429 || res.status == 503));
      if (retryable && attempt < 5) {
        ++r->retries;
        log(fmt::format("request failed ({}); waiting for the server", sent ? std::to_string(res.status) : httplib::to_string(err)));
        sleep_s(sent ? 1.0 : 0.2);
        if (!sent) wait_health();
        continue;
      }
      r->e2e_s = seconds_since(st.t0);
      finish_record(st, sent, sent ? res.status : 0, err, r);
      return;
    }
  }

  static void finish_record(const StreamState& st, bool sent, int status, httplib::Error err, RequestRecord* r) {
    r->num_deltas = static_cast<int>(st.delta_s.size());
    if (!st.delta_s.empty()) r->ttft_s = st.delta_s.front();
    if (st.delta_s.empty() && st.finish_s >= 0) {
      r->ttft_s = st.finish_s;
      r->ttft_upper_bound = true;
    }
    if (st.delta_s.size() > 1) {
      std::vector<double> gaps;
      for (size_t i = 1; i < st.delta_s.size(); ++i) gaps.push_back(st.delta_s[i] - st.delta_s[i - 1]);
      r->itl_mean_s = (st.delta_s.back() - st.delta_s.front()) / static_cast<double>(gaps.size());
      std::nth_element(gaps.begin(), gaps.begin() + static_cast<long>(gaps.size() / 2), gaps.end());
      r->itl_p50_s = gaps[gaps.size() / 2];
    }
    r->prompt_tokens = st.prompt_tokens;
    r->cached_tokens = st.cached_tokens;
    r->completion_tokens = st.completion_tokens;
    if (r->completion_tokens > 1 && r->ttft_s >= 0 && !r->ttft_upper_bound && r->e2e_s > r->ttft_s) {
      r->decode_tps = (r->completion_tokens - 1) / (r->e2e_s - r->ttft_s);
    }
    r->ok = sent && status == 200 && st.error.empty() && r->ttft_s >= 0;
    if (!sent) r->error = httplib::to_string(err);
    else if (status != 200) r->error = fmt::format("HTTP {}: {}", status, st.raw.substr(0, 300));
    else if (!st.error.empty()) r->error = st.error;
    else if (r->ttft_s < 0) r->error = "no streamed delta and no finish event";
  }

  const Trace& trace_;
  const ReplayOptions& o_;
  Slots slots_;
  Clock::time_point t0_;
  std::vector<std::vector<TraceMessage>> histories_;  // per session, kept across the restart
  std::mutex mu_, log_mu_;
  std::atomic<bool> stop_{false};
  std::atomic<int> next_request_idx_{0};
  ReplayResult result_;
};

}  // namespace

Result<ReplayResult> replay(const Trace& trace, const ReplayOptions& o) { return Replayer(trace, o).run(); }

Json request_body(const Trace& trace, const std::vector<TraceMessage>& history, const TraceTurn& turn,
                  const ReplayOptions& o, int request_idx) {
  const std::string system =
      o.unique_prefix ? fmt::format("Request {} of this benchmark.\n", request_idx) + trace.system : trace.system;
  Json body = {{"model", o.model}, {"max_tokens", turn.max_tokens}, {"stream", true}};
  Json msgs = Json::array();
  Json tools = Json::array();
  if (o.dialect == Dialect::kOpenAI) {
    // OpenAI clients send no billing line (only Claude Code does, over the Anthropic dialect).
    msgs.push_back({{"role", "system"}, {"content", system}});
    for (const auto& m : history) msgs.push_back(openai_message(m));
    for (const auto& t : trace.tools) {
      tools.push_back({{"type", "function"},
                       {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}});
    }
    body["stream_options"] = {{"include_usage", true}};
    body["temperature"] = 0;
  } else {
    Json blocks = Json::array();
    if (!turn.billing.empty()) blocks.push_back({{"type", "text"}, {"text", turn.billing}});
    blocks.push_back({{"type", "text"}, {"text", system}, {"cache_control", {{"type", "ephemeral"}}}});
    body["system"] = blocks;
    for (const auto& m : history) msgs.push_back(anthropic_message(m));
    for (const auto& t : trace.tools) {
      tools.push_back({{"name", t.name}, {"description", t.description}, {"input_schema", t.parameters}});
    }
  }
  body["messages"] = msgs;
  body["tools"] = tools;
  return body;
}

MetricsSample parse_metrics(const std::string& text, double t_s) {
  MetricsSample s;
  s.t_s = t_s;
  const std::pair<const char*, double*> names[] = {
      {"strata_kv_device_blocks{state=\"used\"}", &s.device_blocks_used},
      {"strata_kv_device_blocks{state=\"total\"}", &s.device_blocks_total},
      {"strata_kv_tier_bytes{tier=\"host\"}", &s.host_bytes},
      {"strata_kv_tier_bytes{tier=\"disk\"}", &s.disk_bytes},
      {"strata_cached_prompt_tokens_total{tier=\"device\"}", &s.cached_device},
      {"strata_cached_prompt_tokens_total{tier=\"host\"}", &s.cached_host},
      {"strata_cached_prompt_tokens_total{tier=\"disk\"}", &s.cached_disk},
  };
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    const std::string name = line.substr(0, sp);
    for (const auto& [n, dst] : names) {
      if (name == n) *dst = std::strtod(line.c_str() + sp + 1, nullptr);
    }
  }
  return s;
}

}  // namespace strata::agentbench
