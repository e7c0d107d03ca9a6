// The benchmark report: per-turn aggregates, a human summary, report.json and gnuplot PNGs.
#pragma once

#include <string>
#include <vector>

#include "agentbench/replay.h"

namespace strata::agentbench {

struct TurnStats {
  int turn_idx = 0;
  int num_requests = 0;
  long prompt_tokens = 0;
  long cached_tokens = 0;
  double cache_efficiency = 0;  // cached / prompt
  double median_ttft_s = 0;
};

struct Summary {
  int num_requests = 0, num_failed = 0;
  int num_ttft_upper_bound = 0;  // streamed nothing visible: TTFT is the finish event's time
  long prompt_tokens = 0, cached_tokens = 0;
  double cache_efficiency = 0;      // cached prompt tokens / prompt tokens, all requests
  double median_ttft_first_s = 0;   // turn 0 of every session
  double median_ttft_later_s = 0;   // turns >= 1
  double median_ttft_after_restart_s = -1;  // first request of each session after the restart
  double median_decode_tps = 0;
  double median_itl_s = 0;
  std::vector<TurnStats> per_turn;
};

Summary summarize(const ReplayResult& r);
std::string summary_text(const Summary& s, const std::string& header);
Json report_json(const Summary& s, const ReplayResult& r, const Json& config);

// Writes report.json, summary.txt, the .dat/.gp files and (when gnuplot runs) ttft_per_turn.png,
// cache_efficiency.png and tier_occupancy.png into dir. Returns the PNGs written.
Result<std::vector<std::string>> write_report(const std::string& dir, const Summary& s, const ReplayResult& r,
                                              const Json& config, const std::string& title);

}  // namespace strata::agentbench
