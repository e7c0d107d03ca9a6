// A fixed pool of worker threads for data-parallel kernels. parallel_for splits [0, n) into
// contiguous ranges, a run of them per thread; each thread works through its own run from the
// front, then takes what is left of the others' runs from their back, each take a quarter of
// what is left of the run (so the pieces shrink toward the meeting point); the caller's thread
// takes part. Workers spin briefly between jobs (a decode step dispatches hundreds of small
// jobs) and then sleep.
//
// A job costs as few cache-line transfers between cores as it can: on this project's VM the
// two vCPUs sometimes sit on different CCDs, where a line takes ~250 ns to cross
// (bench/cpu/NOTES.md, round 7). The job's whole description sits in the line the workers
// spin on; the callable is called through a plain function pointer, not a std::function; a
// thread sets up its own run when it first takes from it (an epoch in the run's cursor says
// whether that was done for this job), not the caller for everyone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace strata {

// What each thread may prefetch into its L2 once it has finished its part of a job, while it
// waits (for the others, or for the next job): bytes from at[t], a few lines between looks at
// what it waits for. The caller keeps it alive and unchanged while the pool may read it.
struct WaitPrefetch {
  static constexpr int kMaxThreads = 16;
  const char* at[kMaxThreads] = {};
  size_t bytes = 0;
};

class ThreadPool {
 public:
  // num_threads counts the caller; 0 means all hardware threads.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // fn(thread_idx, begin, end) for each range of a partition of [0, n) into ranges that are
  // a multiple of `grain` long except the last; a thread may get several ranges (thread_idx
  // names the thread running it, for per-thread scratch). Blocks until all ranges are done.
  // then: what each thread prefetches once done with its ranges, while it waits (may be null).
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn, const WaitPrefetch* then = nullptr) {
    using Fn = std::remove_reference_t<F>;
    dispatch(
        n, grain,
        [](const void* f, int t, int64_t b, int64_t e) {
          (*static_cast<Fn*>(const_cast<void*>(f)))(t, b, e);
        },
        &fn, then);
  }

  // Thread t's own run [begin, end) of parallel_for(n, grain): false where t takes no part.
  bool run_of(int t, int64_t n, int64_t grain, int64_t& begin, int64_t& end) const;

  // Benches: the chunks of a thread's run (default 64, at most 128) and the share of what is
  // left of a run that a take claims (default 4: a quarter; 0: one chunk a take, as before
  // round 11). Applies to every pool, from its next job.
  static void set_chunking(int chunks_per_thread, int take_divisor);

  // fn(thread_idx) once on each thread.
  template <class F>
  void run_on_all(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    dispatch(
        -1, 1,
        [](const void* f, int t, int64_t, int64_t) {
          (*static_cast<Fn*>(const_cast<void*>(f)))(t);
        },
        &fn);
  }

 private:
  using Call = void (*)(const void* fn, int thread_idx, int64_t begin, int64_t end);
  // n < 0: run_on_all; otherwise parallel_for's partition.
  void dispatch(int64_t n, int64_t grain, Call call, const void* fn,
                const WaitPrefetch* then = nullptr);
  void run_job(int t, uint32_t epoch);
  void worker_loop(int idx);
  // Takes chunks [first, first + count) of thread `owner`'s run (from its front or its back) for
  // job `epoch`.
  bool take(int owner, bool front, uint32_t epoch, int64_t& first, int64_t& count);

  // The job: written by the caller before it bumps `gen`, read by the workers once they see it.
  struct alignas(64) Job {
    std::atomic<uint64_t> gen{0};
    Call call = nullptr;
    const void* fn = nullptr;
    int64_t n = 0, span = 0, num_chunks = 0;
    int nt = 0;  // threads taking part (parallel_for)
    uint32_t take_divisor = 0;  // a take claims 1 / take_divisor of what is left (0: one chunk)
    const WaitPrefetch* then = nullptr;
  };
  static_assert(sizeof(Job) == 64, "the job is one cache line");
  // parallel_for's chunks [next, end) not yet taken from thread t's run, packed as
  // epoch << 32 | end << 16 | next, with the low 32 bits of the job's gen as its epoch (an older
  // epoch: nobody has taken from this run yet in this job). One cache line each: the owner
  // takes chunks from the front, other threads from the back, so both streams stay sequential.
  struct alignas(64) Cursor {
    std::atomic<uint64_t> range{0};
  };
  struct alignas(64) Pending {
    std::atomic<int> left{0};
  };

  int num_threads_;
  Job job_;
  Pending pending_;
  std::unique_ptr<Cursor[]> cursors_;  // [num_threads_]
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};  // workers asleep on cv_, or about to be
  std::atomic<bool> stop_{false};
};

}  // namespace strata
