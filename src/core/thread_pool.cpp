#include "core/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define STRATA_PAUSE() _mm_pause()
#else
#define STRATA_PAUSE() ((void)0)
#endif

namespace strata {
namespace {
// 16 chunks a thread rather than 4: a thread that finishes first waits for at most the rest
// of one smaller chunk (decode +3% in the VM's fast minutes; bench/cpu/NOTES.md).
constexpr int64_t kChunksPerThread = 16;

// A spin step. Past the first ~1000 steps (tens of microseconds: longer than any gap between
// a step's ops on an idle machine) every 64th step yields the core, so that on a machine with
// more runnable threads than cores the thread being waited for can get it.
inline void pause_or_yield(int spin) {
  if (spin > 1000 && (spin & 63) == 0) {
    std::this_thread::yield();
  } else {
    STRATA_PAUSE();
  }
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  cursors_ = std::make_unique<Cursor[]>(static_cast<size_t>(num_threads_));
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int idx) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for a short while: consecutive jobs arrive microseconds apart during a step.
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < 20000; ++spin) {
      pause_or_yield(spin);
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    (*job_)(idx);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(num_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  fn(0);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) pause_or_yield(spin);
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t num_grains = (n + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads_, num_grains));
  if (nt <= 1) {
    fn(0, 0, n);
    return;
  }
  // Chunks of whole grains, 16 per thread. Thread t owns a contiguous run of them and works
  // through it in order, then takes what is left of the others' runs, from their back: one
  // sequential weight stream per core, as a decode matmul wants (interleaving chunks of the two
  // threads, as one shared counter did, cost 8-10% of decode; bench/cpu/NOTES.md), while a
  // thread slowed down by another process or a page fault still leaves its remaining chunks to
  // the others instead of holding everyone at the barrier.
  const int64_t chunks = std::min<int64_t>(num_grains, int64_t{nt} * kChunksPerThread);
  const int64_t span = (num_grains + chunks - 1) / chunks * grain;
  const int64_t num_chunks = (n + span - 1) / span;
  for (int t = 0; t < num_threads_; ++t) {
    const uint64_t b = t < nt ? static_cast<uint64_t>(num_chunks * t / nt) : 0;
    const uint64_t e = t < nt ? static_cast<uint64_t>(num_chunks * (t + 1) / nt) : 0;
    cursors_[t].range.store(e << 32 | b, std::memory_order_relaxed);
  }
  run_on_all([&](int t) {
    for (int k = 0; k < num_threads_; ++k) {  // its own run first (from the front), then the others' (from the back)
      std::atomic<uint64_t>& range = cursors_[(t + k) % num_threads_].range;
      for (;;) {
        uint64_t r = range.load(std::memory_order_relaxed);
        int64_t i = -1;
        while (static_cast<uint32_t>(r) < (r >> 32)) {
          const bool front = k == 0;
          const uint64_t taken = front ? r + 1 : r - (uint64_t{1} << 32);
          if (range.compare_exchange_weak(r, taken, std::memory_order_relaxed)) {
            i = front ? static_cast<int64_t>(static_cast<uint32_t>(r)) : static_cast<int64_t>(r >> 32) - 1;
            break;
          }
        }
        if (i < 0) break;
        fn(t, i * span, std::min(n, (i + 1) * span));
      }
    }
  });
}

}  // namespace strata
