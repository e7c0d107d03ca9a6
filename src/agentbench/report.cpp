// Report aggregation and output. Plots are gnuplot scripts written beside their data, so a
// reader can re-plot or restyle them without rerunning the benchmark.
#include "agentbench/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

namespace strata::agentbench {
namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double ratio(long a, long b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0; }

Status write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
  if (!f) return error(ErrorCode::kIo, fmt::format("cannot write {}", p.string()));
  return Status::ok();
}

std::string restart_arrow(const ReplayResult& r) {
  if (r.restart_at_s < 0) return "";
  return fmt::format("set arrow from {0:.3f}, graph 0 to {0:.3f}, graph 1 nohead dt 2 lc rgb 'red'\n"
                     "set label 'restart' at {0:.3f}, graph 0.95 offset 0.5,0 tc rgb 'red'\n", r.restart_at_s);
}

std::vector<RequestRecord> by_start(const ReplayResult& r) {
  auto v = r.requests;
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.start_s < b.start_s; });
  return v;
}

}  // namespace

Summary summarize(const ReplayResult& r) {
  Summary s;
  std::map<int, std::vector<const RequestRecord*>> turns;
  std::vector<double> first, later, after_restart, tps, itl;
  std::map<std::string, bool> seen_after_restart;
  for (const auto& q : r.requests) {
    ++s.num_requests;
    if (!q.ok) { ++s.num_failed; continue; }
    s.prompt_tokens += q.prompt_tokens;
    s.cached_tokens += q.cached_tokens;
    s.num_ttft_upper_bound += q.ttft_upper_bound;
    turns[q.turn_idx].push_back(&q);
    (q.turn_idx == 0 ? first : later).push_back(q.ttft_s);
    if (q.decode_tps > 0) tps.push_back(q.decode_tps);
    if (q.itl_p50_s > 0) itl.push_back(q.itl_p50_s);
  }
  // The first request of each session after the restart: the one that must come from disk.
  for (const auto& q : by_start(r)) {
    if (q.ok && q.phase == 1 && !seen_after_restart[q.session_id]) {
      seen_after_restart[q.session_id] = true;
      after_restart.push_back(q.ttft_s);
    }
  }
  s.cache_efficiency = ratio(s.cached_tokens, s.prompt_tokens);
  s.median_ttft_first_s = median(first);
  s.median_ttft_later_s = median(later);
  if (!after_restart.empty()) s.median_ttft_after_restart_s = median(after_restart);
  s.median_decode_tps = median(tps);
  s.median_itl_s = median(itl);
  for (const auto& [idx, qs] : turns) {
    TurnStats t;
    t.turn_idx = idx;
    std::vector<double> ttft;
    for (const auto* q : qs) {
      ++t.num_requests;
      t.prompt_tokens += q->prompt_tokens;
      t.cached_tokens += q->cached_tokens;
      ttft.push_back(q->ttft_s);
    }
    t.cache_efficiency = ratio(t.cached_tokens, t.prompt_tokens);
    t.median_ttft_s = median(ttft);
    s.per_turn.push_back(t);
  }
  return s;
}

std::string summary_text(const Summary& s, const std::string& header) {
  std::string out = header + "\n";
  out += fmt::format("requests {} ({} failed); prompt tokens {}, cached {}: cache efficiency {:.1f}%\n",
                     s.num_requests, s.num_failed, s.prompt_tokens, s.cached_tokens, 100 * s.cache_efficiency);
  out += fmt::format("median TTFT: turn 1 {:.3f} s, later turns {:.3f} s", s.median_ttft_first_s, s.median_ttft_later_s);
  if (s.median_ttft_after_restart_s >= 0) {
    out += fmt::format(", first turn after restart {:.3f} s", s.median_ttft_after_restart_s);
  }
  if (s.num_ttft_upper_bound > 0) {
    out += fmt::format(" ({} requests streamed no visible token: their TTFT is the finish time)", s.num_ttft_upper_bound);
  }
  out += fmt::format("\nmedian decode {:.1f} tok/s, median inter-token {:.1f} ms\n", s.median_decode_tps,
                     1000 * s.median_itl_s);
  out += "turn  requests  prompt_tok  cached_tok  efficiency  median_ttft_s\n";
  for (const auto& t : s.per_turn) {
    out += fmt::format("{:4}  {:8}  {:10}  {:10}  {:9.1f}%  {:13.3f}\n", t.turn_idx + 1, t.num_requests,
                       t.prompt_tokens, t.cached_tokens, 100 * t.cache_efficiency, t.median_ttft_s);
  }
  return out;
}

Json report_json(const Summary& s, const ReplayResult& r, const Json& config) {
  Json turns = Json::array();
  for (const auto& t : s.per_turn) {
    turns.push_back({{"turn", t.turn_idx + 1}, {"requests", t.num_requests}, {"prompt_tokens", t.prompt_tokens},
                     {"cached_tokens", t.cached_tokens}, {"cache_efficiency", t.cache_efficiency},
                     {"median_ttft_s", t.median_ttft_s}});
  }
  Json reqs = Json::array();
  for (const auto& q : by_start(r)) {
    reqs.push_back({{"session", q.session_id}, {"kind", q.session_kind}, {"turn", q.turn_idx + 1},
                    {"phase", q.phase}, {"start_s", q.start_s}, {"ttft_s", q.ttft_s}, {"e2e_s", q.e2e_s},
                    {"itl_mean_s", q.itl_mean_s}, {"itl_p50_s", q.itl_p50_s}, {"deltas", q.num_deltas},
                    {"prompt_tokens", q.prompt_tokens}, {"cached_tokens", q.cached_tokens},
                    {"completion_tokens", q.completion_tokens}, {"decode_tps", q.decode_tps},
                    {"retries", q.retries}, {"ttft_upper_bound", q.ttft_upper_bound}, {"ok", q.ok}, {"error", q.error}});
  }
  Json metrics = Json::array();
  for (const auto& m : r.metrics) {
    metrics.push_back({{"t_s", m.t_s}, {"device_blocks_used", m.device_blocks_used},
                       {"device_blocks_total", m.device_blocks_total}, {"host_bytes", m.host_bytes},
                       {"disk_bytes", m.disk_bytes}, {"cached_device", m.cached_device},
                       {"cached_host", m.cached_host}, {"cached_disk", m.cached_disk}});
  }
  return {{"config", config},
          {"summary",
           {{"requests", s.num_requests}, {"failed", s.num_failed},
            {"ttft_upper_bound_requests", s.num_ttft_upper_bound}, {"prompt_tokens", s.prompt_tokens},
            {"cached_tokens", s.cached_tokens}, {"cache_efficiency", s.cache_efficiency},
            {"median_ttft_turn1_s", s.median_ttft_first_s}, {"median_ttft_later_s", s.median_ttft_later_s},
            {"median_ttft_after_restart_s", s.median_ttft_after_restart_s},
            {"median_decode_tps", s.median_decode_tps}, {"median_itl_s", s.median_itl_s},
            {"wall_s", r.wall_s}, {"restart_at_s", r.restart_at_s}}},
          {"per_turn", turns},
          {"requests", reqs},
          {"metrics", metrics}};
}

Result<std::vector<std::string>> write_report(const std::string& dir, const Summary& s, const ReplayResult& r,
                                              const Json& config, const std::string& title) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return error(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
  const fs::path d(dir);
  if (auto st = write_file(d / "report.json", report_json(s, r, config).dump(2) + "\n"); !st) return st;
  if (auto st = write_file(d / "summary.txt", summary_text(s, title)); !st) return st;

  // requests.dat: start_s turn ttft_s efficiency cumulative_efficiency is_subagent phase
  std::string req_dat = "# start_s turn ttft_s cache_eff cumulative_eff is_subagent phase\n";
  long cum_p = 0, cum_c = 0;
  for (const auto& q : by_start(r)) {
    if (!q.ok) continue;
    cum_p += q.prompt_tokens;
    cum_c += q.cached_tokens;
    req_dat += fmt::format("{:.3f} {} {:.4f} {:.4f} {:.4f} {} {}\n", q.start_s, q.turn_idx + 1, q.ttft_s,
                           ratio(q.cached_tokens, q.prompt_tokens), ratio(cum_c, cum_p),
                           q.session_kind == "subagent" ? 1 : 0, q.phase);
  }
  std::string turn_dat = "# turn median_ttft_s cache_eff\n";
  for (const auto& t : s.per_turn) {
    turn_dat += fmt::format("{} {:.4f} {:.4f}\n", t.turn_idx + 1, t.median_ttft_s, t.cache_efficiency);
  }
  std::string met_dat = "# t_s device_blocks_used device_blocks_total host_MiB disk_MiB\n";
  for (const auto& m : r.metrics) {
    met_dat += fmt::format("{:.3f} {} {} {:.2f} {:.2f}\n", m.t_s, m.device_blocks_used, m.device_blocks_total,
                           m.host_bytes / 1048576.0, m.disk_bytes / 1048576.0);
  }
  for (const auto& [name, text] : {std::pair{"requests.dat", req_dat}, {"turns.dat", turn_dat}, {"metrics.dat", met_dat}}) {
    if (auto st = write_file(d / name, text); !st) return st;
  }

  const std::string head = fmt::format("set terminal pngcairo size 900,500 noenhanced\nset grid\nset key top left\n");
  std::string gp = head;
  gp += fmt::format("set output 'ttft_per_turn.png'\nset title '{}: time to first token per turn'\n"
                    "set xlabel 'turn (1 = first request of a session)'\nset ylabel 'TTFT (s)'\n"
                    "plot 'requests.dat' using 2:($6==0?$3:1/0) with points pt 7 ps 0.7 title 'main sessions', \\\n"
                    "     'requests.dat' using 2:($6==1?$3:1/0) with points pt 5 ps 0.7 title 'sub-agents', \\\n"
                    "     'turns.dat' using 1:2 with linespoints lw 2 title 'median'\n", title);
  gp += "reset\n" + head;
  gp += fmt::format("set output 'cache_efficiency.png'\nset title '{}: cache efficiency over time'\n"
                    "set xlabel 'request start (s)'\nset ylabel 'cached prompt tokens / prompt tokens'\n"
                    "set yrange [0:1.05]\nset key bottom right\n{}"
                    "plot 'requests.dat' using 1:4 with points pt 7 ps 0.6 title 'per request', \\\n"
                    "     'requests.dat' using 1:5 with lines lw 2 title 'cumulative'\n", title, restart_arrow(r));
  std::vector<std::string> pngs = {"ttft_per_turn.png", "cache_efficiency.png"};
  if (!r.metrics.empty()) {
    gp += "reset\n" + head;
    gp += fmt::format("set output 'tier_occupancy.png'\nset title '{}: KV tier occupancy (/metrics)'\n"
                      "set xlabel 'time (s)'\nset ylabel 'device blocks used'\nset y2label 'MiB'\nset y2tics\n"
                      "set ytics nomirror\n{}"
                      "plot 'metrics.dat' using 1:2 with linespoints pt 7 ps 0.5 lw 2 title 'device blocks used', \\\n"
                      "     'metrics.dat' using 1:4 axes x1y2 with linespoints pt 7 ps 0.5 lw 2 title 'host RAM tier (MiB)', \\\n"
                      "     'metrics.dat' using 1:5 axes x1y2 with linespoints pt 7 ps 0.5 lw 2 title 'SSD tier (MiB)'\n",
                      title, restart_arrow(r));
    pngs.push_back("tier_occupancy.png");
  }
  if (auto st = write_file(d / "plots.gp", gp); !st) return st;
  const std::string cmd = fmt::format("cd '{}' && gnuplot plots.gp 2> gnuplot.log", fs::absolute(d).string());
  if (std::system(cmd.c_str()) != 0) {
    return error(ErrorCode::kIo, fmt::format("gnuplot failed (data and plots.gp are in {}; is gnuplot installed?)", dir));
  }
  return pngs;
}

}  // namespace strata::agentbench
