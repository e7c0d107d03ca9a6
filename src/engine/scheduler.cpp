#include "engine/scheduler.h"

#include <algorithm>

#include "core/check.h"

namespace strata::engine {

namespace {
using Clock = std::chrono::steady_clock;
}

Scheduler::Scheduler(kv::KvCache& kv, SchedulerOptions options) : kv_(kv), opt_(options) {
  STRATA_CHECK(opt_.parallel >= 1 && opt_.batch_tokens >= 1);
}

void Scheduler::insert_by_arrival(std::vector<SeqState*>& list, SeqState* s) {
  auto it = std::upper_bound(list.begin(), list.end(), s, [](const SeqState* a, const SeqState* b) {
    return a->arrival < b->arrival;
  });
  list.insert(it, s);
}

void Scheduler::add(SeqState* s) {
  s->phase = SeqPhase::kWaiting;
  insert_by_arrival(waiting_, s);
}

void Scheduler::remove(SeqState* s) {
  std::erase(waiting_, s);
  std::erase(running_, s);
  if (s->seq) kv_.free(*s->seq);
  s->seq.reset();
  s->phase = SeqPhase::kFinished;
}

bool Scheduler::only_loading() const {
  if (running_.empty()) return false;
  return std::all_of(running_.begin(), running_.end(),
                     [](const SeqState* s) { return s->phase == SeqPhase::kLoading; });
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  want_.clear();
  budget_ = opt_.batch_tokens;
  kv_.poll();
  update_loading();
  plan_running(plan);
  admit(plan);
  for (const StepItem& it : plan.items) {
    plan.num_tokens += it.num_tokens;
    if (it.seq->num_computed >= it.seq->num_prompt && it.num_tokens == 1) {
      plan.num_decode++;
    } else {
      plan.num_prefill_tokens += it.num_tokens;
    }
  }
  return plan;
}

void Scheduler::commit(const StepPlan& plan) {
  for (const StepItem& it : plan.items) {
    SeqState* s = it.seq;
    STRATA_CHECK(s->seq.has_value() && it.begin == s->num_computed);
    kv_.commit(*s->seq, std::span<const int32_t>(s->tokens).subspan(
                            static_cast<size_t>(it.begin), static_cast<size_t>(it.num_tokens)));
    s->num_computed += it.num_tokens;
  }
}

void Scheduler::mark_ready(SeqState* s) {
  s->phase = SeqPhase::kRunning;
  s->num_computed = kv_.num_tokens(*s->seq);
  if (!s->has_stats) {
    s->first_stats = kv_.sequence_stats(*s->seq);
    s->has_stats = true;
  }
}

// SSD reads in flight: take the sequence when they are done, or give up on them when waiting
// has taken longer than computing those tokens would.
void Scheduler::update_loading() {
  const auto now = Clock::now();
  for (SeqState* s : running_) {
    if (s->phase != SeqPhase::kLoading) continue;
    if (!kv_.is_ready(*s->seq)) {
      const double waited = std::chrono::duration<double>(now - s->load_started).count();
      const double limit = std::max(opt_.min_load_wait_seconds,
                                    opt_.load_seconds_per_token * kv_.num_cached_tokens(*s->seq));
      if (waited < limit) continue;
      kv_.abandon_pending(*s->seq);
    }
    mark_ready(s);
  }
}

void Scheduler::preempt(SeqState* s, StepPlan& plan) {
  // Full blocks are in the prefix index already (and go down to the host tier when evicted);
  // the re-admission finds them through lookup, so only the rest is recomputed.
  if (s->seq) kv_.free(*s->seq);
  s->seq.reset();
  s->num_computed = 0;
  s->phase = SeqPhase::kWaiting;
  s->num_preemptions++;
  num_preemptions_++;
  auto w = want_.find(s);
  if (w != want_.end()) {
    budget_ += w->second;
    want_.erase(w);
  }
  std::erase(running_, s);
  insert_by_arrival(waiting_, s);
  plan.preempted.push_back(s);
}

int32_t Scheduler::grow(SeqState* s, int32_t n, bool can_shrink, bool may_preempt, StepPlan& plan) {
  const int32_t bt = kv_.layout().block_tokens;
  while (true) {
    if (kv_.allocate(*s->seq, n) == kv::Alloc::kOk) return n;
    SeqState* newest = running_.back();
    if (may_preempt && newest != s) {
      preempt(newest, plan);
      continue;
    }
    if (can_shrink) {
      const int32_t room =
          (static_cast<int32_t>(kv_.block_table(*s->seq).size()) + kv_.num_free_blocks()) * bt -
          kv_.num_tokens(*s->seq);
      if (room > 0 && room < n) {
        n = room;
        continue;
      }
    }
    if (!may_preempt) return 0;  // try again next step, with the right to preempt
    if (running_.size() == 1) {  // alone and still no room: the pool is too small for it
      std::erase(running_, s);
      kv_.free(*s->seq);
      s->seq.reset();
      s->phase = SeqPhase::kFinished;
      plan.failed.push_back(s);
      return 0;
    }
    preempt(s, plan);
    return 0;
  }
}

// Decoders first (one token each), then prefill chunks, oldest first; KV is allocated in
// arrival order so an older sequence may take a newer one's blocks, never the reverse.
void Scheduler::plan_running(StepPlan& plan) {
  for (SeqState* s : running_) {
    if (s->phase == SeqPhase::kRunning && s->is_decoding() && budget_ > 0) {
      want_[s] = 1;
      budget_--;
    }
  }
  for (SeqState* s : running_) {
    if (s->phase != SeqPhase::kRunning || s->is_decoding() || s->num_uncomputed() <= 0 ||
        budget_ <= 0)
      continue;
    const int32_t n = std::min(s->num_uncomputed(), budget_);
    want_[s] = n;
    budget_ -= n;
  }
  for (size_t i = 0; i < running_.size(); ++i) {
    SeqState* s = running_[i];
    auto w = want_.find(s);
    if (w == want_.end()) continue;
    const int32_t n = w->second;
    const int32_t got = grow(s, n, !s->is_decoding(), /*may_preempt=*/true, plan);
    if (s->phase != SeqPhase::kRunning)
      break;  // s itself was preempted or failed: it was the newest
    budget_ += n - got;
    if (got > 0)
      plan.items.push_back({s, s->num_computed, got,
                            s->num_computed + got == static_cast<int32_t>(s->tokens.size())});
  }
}

bool Scheduler::waits_for_shared_prefix(const SeqState* s) const {
  const size_t bt = static_cast<size_t>(kv_.layout().block_tokens);
  for (const SeqState* r : running_) {
    if (!(r->extra == s->extra) || r->num_computed >= r->num_prompt) continue;
    const size_t limit = std::min(s->tokens.size() - 1, r->tokens.size());
    size_t common = 0;
    while (common < limit && s->tokens[common] == r->tokens[common]) ++common;
    const size_t shared = common / bt * bt;
    if (shared > static_cast<size_t>(r->num_computed)) return true;
  }
  return false;
}

void Scheduler::admit(StepPlan& plan) {
  const int32_t bt = kv_.layout().block_tokens;
  for (size_t i = 0;
       i < waiting_.size() && static_cast<int>(running_.size()) < opt_.parallel && budget_ > 0;) {
    SeqState* s = waiting_[i];
    // A running request is computing blocks this one shares: take them when they are done.
    if (opt_.prefix_cache && waits_for_shared_prefix(s)) {
      num_shared_waits_++;
      ++i;
      continue;
    }
    const auto max_cached = opt_.prefix_cache ? static_cast<int32_t>(s->tokens.size()) - 1 : 0;
    // Admission by KV room: the blocks of the first chunk that are not resident already, and
    // one block of headroom per running sequence.
    const kv::PrefixMatch m = kv_.lookup(s->tokens, s->extra, max_cached);
    int32_t resident = 0;
    for (const kv::PrefixBlock& pb : m.blocks)
      resident += pb.tier == kv::Tier::kDevice && pb.num_tokens == bt;
    const int32_t first_end =
        std::min<int32_t>(static_cast<int32_t>(s->tokens.size()), m.num_tokens + budget_);
    const int32_t need = (first_end + bt - 1) / bt - resident;
    if (!running_.empty() && need + static_cast<int32_t>(running_.size()) > kv_.num_free_blocks())
      break;
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    s->seq = kv_.add_sequence(s->tokens, s->extra, max_cached);
    insert_by_arrival(running_, s);
    if (!kv_.is_ready(*s->seq)) {
      s->phase = SeqPhase::kLoading;
      s->load_started = Clock::now();
      continue;
    }
    mark_ready(s);
    const int32_t n = std::min(s->num_uncomputed(), budget_);
    const int32_t got = grow(s, n, /*can_shrink=*/true, /*may_preempt=*/false, plan);
    if (got > 0) {
      budget_ -= got;
      plan.items.push_back({s, s->num_computed, got,
                            s->num_computed + got == static_cast<int32_t>(s->tokens.size())});
    }
  }
}

}  // namespace strata::engine
