// The scheduler's policy with fake requests over a real KvCache with a small block pool (no
// model): budgets, decoders first, preemption, admission, shared prefixes.
#include "engine/scheduler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include "core/check.h"
#include "kv/kv_test_util.h"

namespace strata::engine {
namespace {

struct Fake {
  SeqState st;
  int max_new = 0;
  int generated = 0;
  bool done = false;
};

std::unique_ptr<kv::KvCache> make_cache(int32_t blocks, int32_t block_tokens = 4) {
  kv::KvCacheOptions o;
  o.layout = kv::testing::tiny_layout(0, block_tokens);
  o.fingerprint = kv::make_fingerprint("w", "t", o.layout);
  o.device_blocks = blocks;
  auto c = kv::KvCache::create(std::move(o));
  STRATA_CHECK(c.is_ok());
  return std::move(c).value();
}

class Harness {
 public:
  Harness(kv::KvCache& kv, SchedulerOptions o) : kv_(kv), sched_(kv, o) {}
  Fake* add(std::vector<int32_t> prompt, int max_new) {
    auto f = std::make_unique<Fake>();
    f->st.request_id = fakes_.size() + 1;
    f->st.arrival = fakes_.size() + 1;
    f->st.num_prompt = static_cast<int32_t>(prompt.size());
    f->st.tokens = std::move(prompt);
    f->max_new = max_new;
    sched_.add(&f->st);
    fakes_.push_back(std::move(f));
    return fakes_.back().get();
  }
  // One step: plan, "run", commit, sample a token that depends on the sequence so far.
  StepPlan step() {
    StepPlan plan = sched_.schedule();
    EXPECT_LE(plan.num_tokens, sched_.options().batch_tokens);
    EXPECT_LE(static_cast<int>(plan.items.size()), sched_.options().parallel);
    for (SeqState* s : plan.failed) fake(s)->done = true;
    sched_.commit(plan);
    for (const StepItem& it : plan.items) {
      if (!it.sample) continue;
      Fake* f = fake(it.seq);
      f->st.tokens.push_back(
          static_cast<int32_t>((f->st.tokens.size() * 7 + f->st.tokens.back()) % 50));
      if (++f->generated == f->max_new) {
        f->done = true;
        sched_.remove(&f->st);
      }
    }
    kv_.check_invariants();
    return plan;
  }
  int run_all(int max_steps = 10000) {
    int steps = 0;
    while (!sched_.empty() && steps < max_steps) {
      step();
      ++steps;
    }
    return steps;
  }
  Fake* fake(SeqState* s) { return fakes_[s->request_id - 1].get(); }
  Scheduler& sched() { return sched_; }
  std::vector<std::unique_ptr<Fake>>& fakes() { return fakes_; }

 private:
  kv::KvCache& kv_;
  Scheduler sched_;
  std::vector<std::unique_ptr<Fake>> fakes_;
};

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  return kv::testing::random_tokens(rng, n);
}

TEST(Scheduler, DecodersFirstThenPrefillChunksWithinTheBudget) {
  auto kv = make_cache(256);
  Harness h(*kv, {.parallel = 8, .batch_tokens = 16});
  for (int i = 0; i < 4; ++i) h.add(tokens(3, 10 + i), 40);
  h.step();  // four 3-token prefills fit in one step
  for (auto& f : h.fakes()) EXPECT_EQ(f->generated, 1);
  Fake* longp = h.add(tokens(200, 99), 2);
  int steps = 0;
  int left = 200;
  while (longp->generated == 0) {
    StepPlan p = h.step();
    ++steps;
    EXPECT_EQ(p.num_decode, 4) << "every decoder gets a token every step";
    EXPECT_EQ(p.num_tokens, 4 + std::min(left, 12)) << "prefill fills the rest of the budget";
    left -= 12;
  }
  EXPECT_EQ(steps, (200 + 11) / 12);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(h.fakes()[static_cast<size_t>(i)]->generated, 1 + steps);
}

TEST(Scheduler, TinyPoolPreemptsAndEveryRequestCompletes) {
  auto kv = make_cache(16);  // 64 tokens in all
  const int32_t free0 = kv->num_free_blocks();
  Harness h(*kv, {.parallel = 4, .batch_tokens = 32});
  for (int i = 0; i < 6; ++i)
    h.add(tokens(10 + 3 * static_cast<size_t>(i), 20 + i), 25);  // ~40 tokens each
  h.run_all();
  EXPECT_TRUE(h.sched().empty());
  for (auto& f : h.fakes()) {
    EXPECT_EQ(f->generated, 25);
    EXPECT_EQ(f->st.tokens.size(), f->st.num_prompt + 25u);
  }
  EXPECT_GT(h.sched().num_preemptions(), 0u);
  EXPECT_EQ(kv->num_free_blocks(), free0);
}

TEST(Scheduler, PreemptedRequestFindsItsOwnBlocksAgain) {
  auto kv = make_cache(12);
  Harness h(*kv, {.parallel = 2, .batch_tokens = 64});
  Fake* a = h.add(tokens(20, 1), 20);  // 40 tokens = 10 blocks at the end
  Fake* b = h.add(tokens(8, 2), 20);   // newer: preempted when a grows
  h.run_all();
  EXPECT_EQ(a->generated, 20);
  EXPECT_EQ(b->generated, 20);
  EXPECT_GE(b->st.num_preemptions, 1);
  EXPECT_EQ(a->st.num_preemptions, 0) << "the oldest request is never preempted";
  EXPECT_GT(kv->stats().tokens.tokens_from_device, 0) << "re-admission reused the preempted blocks";
}

TEST(Scheduler, RequestLargerThanThePoolFails) {
  auto kv = make_cache(4);  // 16 tokens
  Harness h(*kv, {.parallel = 2, .batch_tokens = 8});
  Fake* f = h.add(tokens(10, 3), 20);
  h.run_all();
  EXPECT_TRUE(f->done);
  EXPECT_LT(f->generated, 20);
  EXPECT_EQ(kv->num_free_blocks(), 4);
}

TEST(Scheduler, IdenticalPromptsAreComputedOnce) {
  auto kv = make_cache(64);
  Harness h(*kv, {.parallel = 4, .batch_tokens = 48});  // a's prompt and more in one step
  const auto p = tokens(41, 7);
  Fake* a = h.add(p, 2);
  Fake* b = h.add(p, 2);
  int prefill_tokens = 0;
  while (!h.sched().empty()) prefill_tokens += h.step().num_prefill_tokens;
  EXPECT_EQ(a->generated, 2);
  EXPECT_EQ(b->generated, 2);
  EXPECT_GT(h.sched().num_shared_prefix_waits(), 0u);
  EXPECT_EQ(b->st.first_stats.tokens_from_device, 40) << "b took a's 10 full blocks";
  EXPECT_EQ(prefill_tokens, 41 + 1);  // a's prompt, then only b's last token
}

TEST(Scheduler, PrefixCacheOffComputesEverything) {
  auto kv = make_cache(64);
  Harness h(*kv, {.parallel = 4, .batch_tokens = 8, .prefix_cache = false});
  const auto p = tokens(41, 7);
  Fake* a = h.add(p, 2);
  h.run_all();
  Fake* b = h.add(p, 2);
  h.run_all();
  EXPECT_EQ(a->st.first_stats.cached_tokens(), 0);
  EXPECT_EQ(b->st.first_stats.cached_tokens(), 0);
}

TEST(Scheduler, CancelledMidPrefillFreesItsBlocks) {
  auto kv = make_cache(64);
  const int32_t free0 = kv->num_free_blocks();
  Harness h(*kv, {.parallel = 4, .batch_tokens = 8});
  Fake* a = h.add(tokens(100, 5), 5);
  h.step();
  h.step();
  EXPECT_LT(kv->num_free_blocks(), free0);
  h.sched().remove(&a->st);
  EXPECT_EQ(kv->num_free_blocks(), free0);
  EXPECT_TRUE(h.sched().empty());
}

// A cached prefix whose SSD read hangs: the request waits at most the limit, then abandons
// the read and computes the prompt itself.
TEST(Scheduler, SlowSsdReadIsAbandonedAndRecomputed) {
  kv::testing::TempDir dir;
  auto options = [&] {
    kv::KvCacheOptions o;
    o.layout = kv::testing::tiny_layout(0, 4);
    o.fingerprint = kv::make_fingerprint("w", "t", o.layout);
    o.device_blocks = 64;
    o.ssd_dir = dir.path;
    o.ssd_bytes = 16u << 20;
    return o;
  };
  const auto p = tokens(41, 11);
  {
    auto c = kv::KvCache::create(options());
    ASSERT_TRUE(c.is_ok());
    Harness h(**c, {.parallel = 2, .batch_tokens = 64});
    h.add(p, 1);
    h.run_all();
    (*c)->flush();
  }
  auto c = kv::KvCache::create(options());
  ASSERT_TRUE(c.is_ok());
  // The first block's record becomes a FIFO: reading it blocks until someone opens it to write.
  const kv::KvCacheOptions o = options();
  const std::string first = kv::full_block_keys(o.fingerprint, 4, p, kv::ExtraKey{})[0].to_hex();
  std::string path;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir.path)) {
    if (f.path().filename().string().starts_with(first)) path = f.path().string();
  }
  ASSERT_FALSE(path.empty());
  std::filesystem::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);

  Harness h(**c, {.parallel = 2,
                  .batch_tokens = 64,
                  .load_seconds_per_token = 0,
                  .min_load_wait_seconds = 0.05});
  Fake* f = h.add(p, 3);
  const auto t0 = std::chrono::steady_clock::now();
  while (!h.sched().empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10))
    h.step();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(f->generated, 3);
  EXPECT_EQ(f->st.first_stats.cached_tokens(), 0) << "the hung prefix was recomputed";
  EXPECT_GE(waited, 0.05) << "after waiting for it";
  EXPECT_GE((*c)->stats().ssd_reads_wasted, 1);
  // Let the hung reader go (it sees an empty record) so the cache can shut down.
  for (int i = 0; i < 1000; ++i) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) {
      ::close(fd);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace
}  // namespace strata::engine

namespace strata::engine {
namespace {

TEST(PrefillRate, PessimisticUntilMeasuredThenTheMeasurement) {
  PrefillRate r;
  EXPECT_FALSE(r.measured());
  // Unmeasured: a 14k-token SSD hit may take 14 s to read before it is given up for a
  // recompute (the old 50 us/token default gave 0.7 s and threw restored prefixes away).
  EXPECT_GE(r.seconds_per_token() * 14000, 10.0);
  r.observe(2.0, 100);  // a CPU: 50 tokens/s
  EXPECT_TRUE(r.measured());
  EXPECT_DOUBLE_EQ(r.seconds_per_token(), 0.02);  // replaced, not averaged with the default
  r.observe(1.0, 100);
  EXPECT_DOUBLE_EQ(r.seconds_per_token(), 0.8 * 0.02 + 0.2 * 0.01);
  r.observe(1.0, 0);  // nothing computed: ignored
  EXPECT_DOUBLE_EQ(r.seconds_per_token(), 0.8 * 0.02 + 0.2 * 0.01);
}

}  // namespace
}  // namespace strata::engine
