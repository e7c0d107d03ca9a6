// strata bench-agent: replay an agent trace (a file or a generated preset) against any OpenAI-
// or Anthropic-compatible server and write the report; `--write-trace` only generates.
// A separate subcommand rather than `bench agent`: `bench` requires -m, which CLI11 would
// then demand of its sub-subcommand too.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "agentbench/replay.h"
#include "agentbench/report.h"
#include "agentbench/trace.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct BenchAgentArgs {
  std::string url = "http://127.0.0.1:8080";
  std::string dialect = "openai";
  std::string trace_file, preset, write_trace, out = "agentbench-out", vocab, hf_tokenizer;
  std::string model = "default", api_key = "sk-bench", restart_cmd;
  int concurrency = 4;
  double think_scale = 1.0, metrics_poll_s = 0.5, wait_s = 300;
  uint64_t seed = 1;
  int sessions = 0, turns = 0, prefix_tokens = 0, max_tokens = 0, restart_after = -2;
  bool quiet = false, no_plots = false, unique_prefix = false;
};

int fail(const Status& st) {
  std::fprintf(stderr, "strata bench-agent: %s\n", st.to_string().c_str());
  return st.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

// The tokenizer the generator counts with: a GGUF's vocabulary, a tokenizer.json folder, or
// the 4-characters-a-token estimate.
Result<std::unique_ptr<tokenizer::Tokenizer>> load_counter(const BenchAgentArgs& a) {
  if (!a.vocab.empty()) {
    auto file = gguf::File::open(a.vocab);
    if (!file) return file.status();
    return tokenizer::Tokenizer::from_gguf(*file.value());
  }
  if (!a.hf_tokenizer.empty()) {
    auto read = [](const std::string& p) {
      std::ifstream f(p);
      return std::string(std::istreambuf_iterator<char>(f), {});
    };
    const std::string tj = read(a.hf_tokenizer + "/tokenizer.json");
    if (tj.empty()) return error(ErrorCode::kNotFound, fmt::format("no tokenizer.json in {}", a.hf_tokenizer));
    return tokenizer::Tokenizer::from_hf_json(tj, read(a.hf_tokenizer + "/tokenizer_config.json"));
  }
  return std::unique_ptr<tokenizer::Tokenizer>();
}

Result<agentbench::Trace> make_trace(const BenchAgentArgs& a) {
  if (!a.trace_file.empty()) return agentbench::load_trace(a.trace_file);
  auto opts = agentbench::preset_options(a.preset.empty() ? "smoke" : a.preset);
  if (!opts) return opts.status();
  agentbench::GenOptions o = opts.value();
  o.seed = a.seed;
  if (a.sessions > 0) o.num_sessions = a.sessions;
  if (a.turns > 0) o.turns_per_session = a.turns;
  if (a.prefix_tokens > 0) o.prefix_tokens = a.prefix_tokens;
  if (a.max_tokens > 0) o.max_tokens = a.max_tokens;
  if (a.restart_after >= -1) o.restart_after_turn = a.restart_after;
  if (o.compact_at_turn >= o.turns_per_session) o.compact_at_turn = -1;
  auto tok = load_counter(a);
  if (!tok) return tok.status();
  const tokenizer::Tokenizer* t = tok.value().get();
  agentbench::TokenCounter count = [t](std::string_view s) {
    return t ? static_cast<int>(t->encode(s, false, false).size()) : agentbench::estimate_tokens(s);
  };
  return agentbench::generate_trace(o, count);
}

int run_bench_agent(const BenchAgentArgs& a) {
  if (!a.trace_file.empty() && !a.preset.empty()) {
    return fail(error(ErrorCode::kInvalidArgument, "give --trace or --preset, not both"));
  }
  auto trace = make_trace(a);
  if (!trace) return fail(trace.status());
  if (!a.write_trace.empty()) {
    std::ofstream f(a.write_trace);
    f << agentbench::to_json(trace.value()).dump(1) << "\n";
    if (!f) return fail(error(ErrorCode::kIo, fmt::format("cannot write {}", a.write_trace)));
    std::fprintf(stderr, "wrote %s (%zu sessions, prefix ~%d tokens)\n", a.write_trace.c_str(),
                 trace.value().sessions.size(), trace.value().prefix_tokens);
    return 0;
  }
  agentbench::ReplayOptions o;
  o.url = a.url;
  if (a.dialect != "openai" && a.dialect != "anthropic") {
    return fail(error(ErrorCode::kInvalidArgument, "--dialect must be openai or anthropic"));
  }
  o.dialect = a.dialect == "openai" ? agentbench::Dialect::kOpenAI : agentbench::Dialect::kAnthropic;
  o.model = a.model;
  o.api_key = a.api_key;
  o.concurrency = a.concurrency;
  o.think_scale = a.think_scale;
  o.restart_cmd = a.restart_cmd;
  o.wait_s = a.wait_s;
  o.metrics_poll_s = a.metrics_poll_s;
  o.quiet = a.quiet;
  o.unique_prefix = a.unique_prefix;
  auto result = agentbench::replay(trace.value(), o);
  if (!result) return fail(result.status());
  const auto summary = agentbench::summarize(result.value());
  const std::string title = fmt::format("{} ({} sessions, prefix ~{} tokens, {})", trace.value().name,
                                        trace.value().sessions.size(), trace.value().prefix_tokens, a.dialect);
  const agentbench::Json config = {{"url", a.url}, {"dialect", a.dialect}, {"model", a.model},
                                   {"trace", trace.value().name}, {"seed", trace.value().seed},
                                   {"prefix_tokens", trace.value().prefix_tokens},
                                   {"sessions", trace.value().sessions.size()}, {"concurrency", a.concurrency},
                                   {"think_scale", a.think_scale}, {"restart_cmd", a.restart_cmd},
                                   {"unique_prefix", a.unique_prefix}};
  std::printf("%s", agentbench::summary_text(summary, title).c_str());
  if (a.no_plots) {
    const std::string path = a.out + "/report.json";
    std::filesystem::create_directories(a.out);
    std::ofstream(path) << agentbench::report_json(summary, result.value(), config).dump(2) << "\n";
    return summary.num_failed ? 1 : 0;
  }
  auto pngs = agentbench::write_report(a.out, summary, result.value(), config, title);
  if (!pngs) return fail(pngs.status());
  std::printf("report: %s/report.json, summary.txt, %zu plots\n", a.out.c_str(), pngs.value().size());
  return summary.num_failed ? 1 : 0;
}

}  // namespace

void register_bench_agent(CLI::App& app) {
  auto a = std::make_shared<BenchAgentArgs>();
  auto* cmd = app.add_subcommand("bench-agent", "Replay coding-agent sessions against a server; report TTFT and cache efficiency");
  cmd->add_option("--url", a->url, "Server base URL")->capture_default_str();
  cmd->add_option("--dialect", a->dialect, "openai (/v1/chat/completions) or anthropic (/v1/messages)")->capture_default_str();
  auto* tr = cmd->add_option("--trace", a->trace_file, "Trace JSON file");
  cmd->add_option("--preset", a->preset, "Generated trace: smoke, agent-4x20, restart")->excludes(tr);
  cmd->add_option("--seed", a->seed, "Generator seed")->capture_default_str();
  cmd->add_option("--sessions", a->sessions, "Override: main sessions");
  cmd->add_option("--turns", a->turns, "Override: turns per main session");
  cmd->add_option("--prefix-tokens", a->prefix_tokens, "Override: shared system prompt + tools tokens");
  cmd->add_option("--max-tokens", a->max_tokens, "Override: tokens decoded per request");
  cmd->add_option("--restart-after", a->restart_after, "Override: restart after this turn (0-based; -1: never)");
  cmd->add_option("--vocab", a->vocab, "GGUF whose tokenizer counts the generated text");
  cmd->add_option("--hf-tokenizer", a->hf_tokenizer, "Folder with tokenizer.json to count the generated text");
  cmd->add_option("--write-trace", a->write_trace, "Write the generated trace here and exit");
  cmd->add_option("--concurrency", a->concurrency, "Requests in flight at once")->capture_default_str();
  cmd->add_option("--model", a->model, "Model name sent in requests")->capture_default_str();
  cmd->add_option("--api-key", a->api_key, "Key sent as Bearer and x-api-key")->capture_default_str();
  cmd->add_option("--think-scale", a->think_scale, "Multiply think times (0: none)")->capture_default_str();
  cmd->add_option("--restart-cmd", a->restart_cmd, "Shell command run at the trace's restart point")->capture_default_str();
  cmd->add_option("--wait", a->wait_s, "Seconds to wait for /health after a failure or restart")->capture_default_str();
  cmd->add_option("--metrics-poll", a->metrics_poll_s, "Seconds between /metrics polls (0: off)")->capture_default_str();
  cmd->add_option("--out", a->out, "Report folder")->capture_default_str();
  cmd->add_flag("--unique-prefix", a->unique_prefix, "Cache-off baseline: open every system prompt with a per-request line");
  cmd->add_flag("--no-plots", a->no_plots, "Write report.json only");
  cmd->add_flag("-q,--quiet", a->quiet, "No per-request lines");
  cmd->callback([a] { set_exit_code(run_bench_agent(*a)); });
}

}  // namespace strata::cli
