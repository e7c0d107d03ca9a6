// The scheduler: policy only. Each step it hands out a token budget: running decoders first
// (one token each), then prefill chunks, oldest request first; admits waiting requests by KV
// room; preempts the newest request when blocks run out. It sees KV memory only through
// kv::KvCache (lookup, add_sequence, allocate, commit, free) and never runs the model, so
// tests drive it with fake requests and a small block pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kv/kv_cache.h"

namespace strata::engine {

enum class SeqPhase { kWaiting, kLoading, kRunning, kFinished };

// One request as the scheduler sees it. The engine owns it; the scheduler keeps pointers
// while it is waiting or running.
struct SeqState {
  uint64_t request_id = 0;
  uint64_t arrival = 0;         // submission order: lower is older (and has priority)
  std::vector<int32_t> tokens;  // the prompt, then the generated tokens
  int32_t num_prompt = 0;
  kv::ExtraKey extra;
  SeqPhase phase = SeqPhase::kWaiting;
  std::optional<kv::SeqId> seq;  // the KV cache sequence while admitted
  int32_t num_computed = 0;      // tokens with K/V in the cache (cached or computed)
  int num_preemptions = 0;
  // Cache hits of the first admission (usage reports these; a re-admission after a
  // preemption finds the request's own blocks, which is no cache hit for the client).
  bool has_stats = false;
  kv::RequestStats first_stats;
  std::chrono::steady_clock::time_point load_started;

  int32_t num_uncomputed() const { return static_cast<int32_t>(tokens.size()) - num_computed; }
  bool is_decoding() const { return num_computed >= num_prompt && num_uncomputed() == 1; }
};

inline constexpr double kUnmeasuredSecondsPerToken = 1e-3;

// The measured cost of computing one prompt token: the first measurement replaces the
// pessimistic default outright; later ones are averaged in (weight 0.2).
class PrefillRate {
 public:
  void observe(double seconds, int64_t tokens) {
    if (tokens <= 0) return;
    const double per_token = seconds / static_cast<double>(tokens);
    est_ = measured_ ? 0.8 * est_ + 0.2 * per_token : per_token;
    measured_ = true;
  }
  double seconds_per_token() const { return est_; }
  bool measured() const { return measured_; }

 private:
  double est_ = kUnmeasuredSecondsPerToken;
  bool measured_ = false;
};

struct SchedulerOptions {
  int parallel = 4;          // most sequences admitted at once
  int batch_tokens = 512;    // token budget of one step
  bool prefix_cache = true;  // false: never reuse cached K/V (every prompt is computed)
  // Wait for SSD reads at most this long per cached token before recomputing instead
  // (the engine replaces it with the measured prefill rate: PrefillRate). Until a prefill has
  // been measured it is pessimistic, 1 ms a token: waiting too long for the first reads after
  // a start costs a fraction of a second; giving up too early recomputes the whole restored
  // prefix (on a 2-core CPU, 14k tokens: minutes).
  double load_seconds_per_token = kUnmeasuredSecondsPerToken;
  double min_load_wait_seconds = 0.002;
};

// One sequence's part of a step: tokens [begin, begin + num_tokens) of seq->tokens.
struct StepItem {
  SeqState* seq = nullptr;
  int32_t begin = 0;
  int32_t num_tokens = 0;
  bool sample = false;  // reaches the last known token: sample the next one
};

struct StepPlan {
  std::vector<StepItem> items;  // in running order (oldest first)
  int32_t num_tokens = 0;
  int num_decode = 0;
  int num_prefill_tokens = 0;
  std::vector<SeqState*> preempted;  // sent back to waiting this step
  std::vector<SeqState*> failed;     // cannot run even alone (KV pool too small): finish them
};

class Scheduler {
 public:
  Scheduler(kv::KvCache& kv, SchedulerOptions options);

  void add(SeqState* s);     // a new request: waiting
  void remove(SeqState* s);  // finished or cancelled: its blocks are freed now
  // Plans the next step (allocates KV for it). The caller runs it, then calls commit().
  StepPlan schedule();
  // The step ran: its tokens' K/V are written; full blocks enter the prefix index.
  void commit(const StepPlan& plan);

  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  bool empty() const { return running_.empty() && waiting_.empty(); }
  // Only sequences waiting for SSD reads: nothing to compute now.
  bool only_loading() const;
  SchedulerOptions& options() { return opt_; }
  uint64_t num_preemptions() const { return num_preemptions_; }
  uint64_t num_shared_prefix_waits() const { return num_shared_waits_; }

 private:
  void update_loading();
  void plan_running(StepPlan& plan);
  void admit(StepPlan& plan);
  // Allocates KV for n more tokens of s, preempting newer sequences; the tokens granted.
  // may_preempt: newer sequences may lose their blocks (never during admission, when newer
  // ones may already hold a part of this step).
  int32_t grow(SeqState* s, int32_t n, bool can_shrink, bool may_preempt, StepPlan& plan);
  void preempt(SeqState* s, StepPlan& plan);
  void mark_ready(SeqState* s);
  bool waits_for_shared_prefix(const SeqState* s) const;
  void insert_by_arrival(std::vector<SeqState*>& list, SeqState* s);

  kv::KvCache& kv_;
  SchedulerOptions opt_;
  std::vector<SeqState*> waiting_;                     // by arrival
  std::vector<SeqState*> running_;                     // by arrival (loading and running)
  std::unordered_map<const SeqState*, int32_t> want_;  // this step's tokens per sequence
  int budget_ = 0;                                     // this step's tokens left
  uint64_t num_preemptions_ = 0;
  uint64_t num_shared_waits_ = 0;
};

}  // namespace strata::engine
