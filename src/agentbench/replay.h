// Replays a trace against an OpenAI- or Anthropic-compatible server: one thread per session,
// turns in order with think time, streaming, a record per request; /metrics polled beside it.
#pragma once

#include <string>
#include <vector>

#include "agentbench/trace.h"

namespace strata::agentbench {

enum class Dialect { kOpenAI, kAnthropic };

struct ReplayOptions {
  std::string url = "http://127.0.0.1:8080";
  Dialect dialect = Dialect::kOpenAI;
  std::string model = "default";
  std::string api_key = "sk-bench";
  int concurrency = 4;          // requests in flight at once
  double think_scale = 1.0;     // multiplies every think time (0: back to back)
  std::string restart_cmd;      // run (sh -c) at the trace's restart point
  double wait_s = 300;          // how long to wait for /health after a failure or restart
  double metrics_poll_s = 0.5;  // 0: don't poll /metrics
  // Cache-off baseline for any server: a per-request line opens the system prompt, so no
  // request shares a prefix with another.
  bool unique_prefix = false;
  bool quiet = false;
};

struct RequestRecord {
  std::string session_id;
  std::string session_kind;
  int turn_idx = 0;
  int phase = 0;           // 1 after the restart
  double start_s = 0;      // from the start of the run
  double ttft_s = -1;      // first content/reasoning/tool delta
  bool ttft_upper_bound = false;  // nothing visible streamed: ttft_s is the finish event's time
  double e2e_s = 0;
  double itl_mean_s = 0;   // mean gap between streamed deltas after the first
  double itl_p50_s = 0;
  int num_deltas = 0;
  int prompt_tokens = 0;   // all prompt tokens, cached included
  int cached_tokens = 0;
  int completion_tokens = 0;
  double decode_tps = 0;   // (completion_tokens - 1) / (e2e - ttft)
  int retries = 0;
  bool ok = false;
  std::string error;
};

struct MetricsSample {
  double t_s = 0;
  double device_blocks_used = 0, device_blocks_total = 0;
  double host_bytes = 0, disk_bytes = 0;
  double cached_device = 0, cached_host = 0, cached_disk = 0;
};

struct ReplayResult {
  std::vector<RequestRecord> requests;  // in completion order
  std::vector<MetricsSample> metrics;
  double wall_s = 0;
  double restart_at_s = -1;
};

// Blocks until the trace has been replayed. Failures of single requests are recorded, not
// returned; an error is returned only when the server never answers /health.
Result<ReplayResult> replay(const Trace& trace, const ReplayOptions& o);

// The request body for one turn: exposed for tests. `history` is what replay keeps;
// request_idx numbers the line that --unique-prefix adds.
Json request_body(const Trace& trace, const std::vector<TraceMessage>& history, const TraceTurn& turn,
                  const ReplayOptions& o, int request_idx = 0);

// Parses "strata_..." lines of a Prometheus text page into a sample (missing names stay 0).
MetricsSample parse_metrics(const std::string& text, double t_s);

}  // namespace strata::agentbench
