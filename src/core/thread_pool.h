// A fixed pool of worker threads for data-parallel kernels. parallel_for splits [0, n) into
// contiguous ranges, a run of them per thread; each thread works through its own run from the
// front, then takes what is left of the others' runs from their back; the caller's thread
// takes part. Workers spin briefly between jobs
// (a decode step dispatches hundreds of small jobs) and then sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

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
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int thread_idx, int64_t begin, int64_t end)>& fn);

  // fn(thread_idx) once on each thread.
  void run_on_all(const std::function<void(int thread_idx)>& fn);

 private:
  void worker_loop(int idx);

  // parallel_for's chunks [next, end) not yet taken from thread t's run, packed as
  // end << 32 | next (one cache line each): the owner takes them from the front, other threads
  // from the back, so both streams stay sequential.
  struct alignas(64) Cursor {
    std::atomic<uint64_t> range{0};
  };

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::unique_ptr<Cursor[]> cursors_;  // [num_threads_]
};

}  // namespace strata
