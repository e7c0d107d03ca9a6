#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>

#include "core/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define STRATA_PAUSE() _mm_pause()
#else
#define STRATA_PAUSE() ((void)0)
#endif

namespace strata {
namespace {
// A thread's run is cut into 64 chunks, and a take claims a quarter of what is left of the
// run (at least one chunk): the first takes are long, the last ones a 64th of the run, so a
// thread that finishes first waits for at most the rest of a small piece, in about as many
// calls as 16 fixed chunks made. 16 chunks rather than 4 gave decode +3% in the VM's fast
// minutes; these guided takes another +0.5-1% (bench/cpu/NOTES.md, rounds 2 and 11).
constexpr int kMaxChunksPerThread = 128;
constexpr uint64_t kMaxChunks = 0xFFFF;  // a cursor's 16-bit fields
std::atomic<int> g_chunks_per_thread{64}, g_take_divisor{4};  // set_chunking

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

// Up to 8 lines of a wait prefetch (at, left advance past them); false when none is left.
inline bool prefetch_step(const char*& at, size_t& left) {
  if (at == nullptr || left == 0) return false;
  const size_t step = std::min<size_t>(left, 8 * 64);
#if defined(__x86_64__)
  for (size_t o = 0; o < step; o += 64) _mm_prefetch(at + o, _MM_HINT_T1);
#endif
  at += step;
  left -= step;
  return true;
}

// parallel_for's split of [0, n) (n > 0): nt threads take part (nt <= 1: no split), in
// num_chunks chunks of span elements (whole grains), 64 per thread. Thread t owns a contiguous
// run of them and works through it in order, then takes what is left of the others' runs,
// from their back: one sequential weight stream per core, as a decode matmul wants
// (interleaving chunks of the two threads, as one shared counter did, cost 8-10% of decode;
// bench/cpu/NOTES.md), while a thread slowed down by another process or a page fault still
// leaves its remaining chunks to the others instead of holding everyone at the barrier.
struct Split {
  int nt = 1;
  int64_t span = 0, num_chunks = 0;
};
Split split_loop(int threads, int64_t n, int64_t grain) {
  Split sp;
  grain = std::max<int64_t>(1, grain);
  const int64_t num_grains = (n + grain - 1) / grain;
  sp.nt = static_cast<int>(std::min<int64_t>(threads, num_grains));
  if (sp.nt <= 1) return sp;
  const int64_t chunks = std::min<int64_t>(
      num_grains,
      int64_t{sp.nt} * std::min<int64_t>(g_chunks_per_thread.load(std::memory_order_relaxed),
                                         static_cast<int64_t>(kMaxChunks) / sp.nt));
  sp.span = (num_grains + chunks - 1) / chunks * grain;
  sp.num_chunks = (n + sp.span - 1) / sp.span;
  return sp;
}

inline uint64_t cursor(uint32_t epoch, uint64_t end, uint64_t next) {
  return uint64_t{epoch} << 32 | end << 16 | next;
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // (a pool of more than kMaxChunks / 64 threads takes fewer chunks a thread: split_loop)
  STRATA_CHECK_MSG(static_cast<uint64_t>(num_threads) <= kMaxChunks,
                   "ThreadPool: too many threads");
  num_threads_ = num_threads;
  cursors_ = std::make_unique<Cursor[]>(static_cast<size_t>(num_threads_));
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_.gen.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::set_chunking(int chunks_per_thread, int take_divisor) {
  g_chunks_per_thread.store(std::clamp(chunks_per_thread, 1, kMaxChunksPerThread));
  g_take_divisor.store(std::max(0, take_divisor));
}

bool ThreadPool::take(int owner, bool front, uint32_t epoch, int64_t& first, int64_t& count) {
  std::atomic<uint64_t>& range = cursors_[owner].range;
  const int64_t nt = job_.nt;
  uint64_t r = range.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t end, next;
    if (static_cast<uint32_t>(r >> 32) != epoch) {  // untouched in this job: the whole run
      next = static_cast<uint64_t>(job_.num_chunks * owner / nt);
      end = static_cast<uint64_t>(job_.num_chunks * (owner + 1) / nt);
    } else {
      end = (r >> 16) & 0xFFFF;
      next = r & 0xFFFF;
    }
    if (next >= end) return false;
    const uint64_t k =
        job_.take_divisor > 0 ? std::max<uint64_t>(1, (end - next) / job_.take_divisor) : 1;
    const uint64_t taken = front ? cursor(epoch, end, next + k) : cursor(epoch, end - k, next);
    if (range.compare_exchange_weak(r, taken, std::memory_order_relaxed)) {
      first = static_cast<int64_t>(front ? next : end - k);
      count = static_cast<int64_t>(k);
      return true;
    }
  }
}

void ThreadPool::run_job(int t, uint32_t epoch) {
  if (job_.n < 0) {
    job_.call(job_.fn, t, 0, 0);
    return;
  }
  const int nt = job_.nt;
  if (t >= nt) return;
  const int64_t n = job_.n, span = job_.span;
  // Its own run first (from the front), then the others' (from the back).
  for (int k = 0; k < nt; ++k) {
    const int owner = (t + k) % nt;
    int64_t i = 0, c = 0;
    while (take(owner, k == 0, epoch, i, c))
      job_.call(job_.fn, t, i * span, std::min(n, (i + c) * span));
  }
}

void ThreadPool::worker_loop(int idx) {
  uint64_t seen = 0;
  const char* pf_at = nullptr;  // the last job's wait prefetch for this thread
  size_t pf_left = 0;
  for (;;) {
    // Spin for a short while: consecutive jobs arrive microseconds apart during a step.
    uint64_t gen = job_.gen.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < 20000; ++spin) {
      if (!prefetch_step(pf_at, pf_left)) pause_or_yield(spin);
      gen = job_.gen.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      // Counted as asleep before gen is read again (both seq_cst): dispatch either sees the
      // count and wakes us, or we see its new gen.
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while ((gen = job_.gen.load(std::memory_order_seq_cst)) == seen) cv_.wait(lock);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = gen;
    if (stop_.load()) return;
    run_job(idx, static_cast<uint32_t>(gen));
    // (read before this thread reports done: the caller may then write the next job)
    const WaitPrefetch* then = job_.then;
    pf_at = then != nullptr && idx < WaitPrefetch::kMaxThreads ? then->at[idx] : nullptr;
    pf_left = then != nullptr ? then->bytes : 0;
    pending_.left.fetch_sub(1, std::memory_order_acq_rel);
  }
}

bool ThreadPool::run_of(int t, int64_t n, int64_t grain, int64_t& begin, int64_t& end) const {
  if (n <= 0) return false;
  const Split sp = split_loop(num_threads_, n, grain);
  if (sp.nt <= 1) {
    begin = 0;
    end = n;
    return t == 0;
  }
  if (t >= sp.nt) return false;
  begin = sp.num_chunks * t / sp.nt * sp.span;
  end = std::min(n, sp.num_chunks * (t + 1) / sp.nt * sp.span);
  return begin < end;
}

void ThreadPool::dispatch(int64_t n, int64_t grain, Call call, const void* fn,
                          const WaitPrefetch* then) {
  int nt = num_threads_;
  int64_t span = 0, num_chunks = 0;
  if (n >= 0) {
    if (n == 0) return;
    const Split sp = split_loop(num_threads_, n, grain);
    nt = sp.nt;
    if (nt <= 1) {
      call(fn, 0, 0, n);
      return;
    }
    span = sp.span;
    num_chunks = sp.num_chunks;
  } else if (num_threads_ == 1) {
    call(fn, 0, 0, 0);
    return;
  }
  job_.call = call;
  job_.fn = fn;
  job_.n = n;
  job_.span = span;
  job_.num_chunks = num_chunks;
  job_.nt = nt;
  job_.then = then;
  job_.take_divisor = static_cast<uint32_t>(g_take_divisor.load(std::memory_order_relaxed));
  pending_.left.store(num_threads_ - 1, std::memory_order_relaxed);
  const uint64_t gen = job_.gen.load(std::memory_order_relaxed) + 1;
  job_.gen.store(gen, std::memory_order_seq_cst);  // publishes the job (and pending_)
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
    }  // a worker between its count and its wait has reached the wait
    cv_.notify_all();
  }
  run_job(0, static_cast<uint32_t>(gen));
  const char* pf_at = then != nullptr ? then->at[0] : nullptr;
  size_t pf_left = then != nullptr ? then->bytes : 0;
  for (int spin = 0; pending_.left.load(std::memory_order_acquire) != 0;) {
    if (!prefetch_step(pf_at, pf_left)) pause_or_yield(spin++);
  }
}

}  // namespace strata
