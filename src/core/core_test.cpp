#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/huge_pages.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace strata {
namespace {

TEST(Fp16, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp16(f), h) << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even -> 1.
  EXPECT_EQ(f32_to_fp16(1.0f + 0x1.0p-11f), 0x3c00);
  EXPECT_EQ(f32_to_fp16(1.0f + 0x1.8p-11f), 0x3c01);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);  // rounds to inf
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(0x1.0p-25f), 0x0000);  // tie to even (0)
  EXPECT_EQ(f32_to_fp16(0x1.8p-25f), 0x0001);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
}

TEST(Bf16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), h);
  }
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);
}

TEST(DType, TableAndNames) {
  EXPECT_EQ(dtype_info(DType::kQ4_K).block_bytes, 144u);
  EXPECT_EQ(row_bytes(DType::kQ8_0, 64), 68u);
  EXPECT_EQ(dtype_from_name("q6_k"), DType::kQ6_K);
  EXPECT_FALSE(dtype_from_name("Q9_9").has_value());
  EXPECT_EQ(dtype_info(16u), nullptr);  // IQ2_XXS: not supported
}

TEST(Status, ResultCarriesValueOrError) {
  Result<int> ok = 3;
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = error(ErrorCode::kCorrupt, "bad magic");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().to_string(), "corrupt: bad magic");
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(4);
  for (int64_t n : {1, 7, 64, 1000, 4097}) {
    for (int64_t grain : {1, 3, 16}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad{0};
      pool.parallel_for(n, grain, [&](int t, int64_t b, int64_t e) {
        // ranges start on a grain and are whole grains except at the end; t is a real thread
        if (b % grain != 0 || (e != n && (e - b) % grain != 0) || t < 0 || t >= 4) bad.fetch_add(1);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      EXPECT_EQ(bad.load(), 0);
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, OwnRunsFromTheFrontStolenChunksFromTheBack) {
  // Thread 0 is slow on every range, so thread 1 finishes its own run and takes pieces of
  // thread 0's: thread 0 walks its run upward from 0, thread 1 takes that run's pieces
  // downward from its end, and the two never interleave (one sequential stream each).
  ThreadPool pool(2);
  const int64_t n = 64 * 16;
  std::vector<std::pair<int64_t, int64_t>> seen[2];
  pool.parallel_for(n, 1, [&](int t, int64_t b, int64_t e) {
    if (t == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    seen[t].push_back({b, e});  // each thread writes only its own vector
  });
  ASSERT_FALSE(seen[0].empty());
  EXPECT_EQ(seen[0].front().first, 0);
  EXPECT_TRUE(std::is_sorted(seen[0].begin(), seen[0].end()));
  std::vector<std::pair<int64_t, int64_t>> stolen;
  for (const auto& r : seen[1]) {
    if (r.first < n / 2) stolen.push_back(r);
  }
  ASSERT_FALSE(stolen.empty());
  EXPECT_TRUE(std::is_sorted(stolen.rbegin(), stolen.rend()));
  EXPECT_GE(stolen.back().first, seen[0].back().second);
  // Every element exactly once.
  std::vector<std::pair<int64_t, int64_t>> all(seen[0]);
  all.insert(all.end(), seen[1].begin(), seen[1].end());
  std::sort(all.begin(), all.end());
  int64_t at = 0;
  for (const auto& [b, e] : all) {
    EXPECT_EQ(b, at);
    at = e;
  }
  EXPECT_EQ(at, n);
}

TEST(ThreadPool, TakesShrinkTowardTheEndOfARun) {
  // Thread 1 is slow, so thread 0 walks its whole run alone: each take claims a quarter of
  // what is left, so its pieces shrink from a quarter of the run to one chunk (a 64th), in 15
  // calls instead of 64.
  ThreadPool pool(2);
  const int64_t chunk = 8, n = 2 * 64 * chunk;
  std::vector<std::pair<int64_t, int64_t>> seen[2];
  pool.parallel_for(n, 1, [&](int t, int64_t b, int64_t e) {
    if (t == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen[t].push_back({b, e});
  });
  int64_t b0 = 0, e0 = 0;
  ASSERT_TRUE(pool.run_of(0, n, 1, b0, e0));
  ASSERT_EQ(e0 - b0, 64 * chunk);
  std::vector<int64_t> own;  // sizes of thread 0's pieces of its own run, in order
  for (const auto& [b, e] : seen[0]) {
    if (e <= e0) own.push_back(e - b);
  }
  const std::vector<int64_t> expected = {16, 12, 9, 6, 5, 4, 3, 2,
                                         1,  1,  1, 1, 1, 1, 1};  // in chunks
  ASSERT_EQ(own.size(), expected.size());
  for (size_t i = 0; i < own.size(); ++i) EXPECT_EQ(own[i], expected[i] * chunk) << i;
}

TEST(ThreadPool, ManyThreadsShareTheCursorsFields) {
  // 1100 threads x 64 chunks would overflow a cursor's 16-bit fields: such a pool takes fewer
  // chunks a thread, and still covers a range exactly once.
  ThreadPool pool(1100);
  const int64_t n = 200000;
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  pool.parallel_for(n, 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
}

TEST(ThreadPool, ASlowThreadLeavesItsWorkToTheOthers) {
  // One range stalls; the others' threads take the rest of the chunks meanwhile.
  ThreadPool pool(2);
  std::vector<std::atomic<int>> by_thread(2);
  pool.parallel_for(64, 1, [&](int t, int64_t b, int64_t e) {
    if (b == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    by_thread[static_cast<size_t>(t)].fetch_add(static_cast<int>(e - b));
  });
  EXPECT_EQ(by_thread[0].load() + by_thread[1].load(), 64);
  EXPECT_GT(std::max(by_thread[0].load(), by_thread[1].load()), 32);
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep) {
    pool.parallel_for(10, 1, [&](int, int64_t b, int64_t e) { sum.fetch_add(e - b); });
  }
  EXPECT_EQ(sum.load(), 20000);
}

TEST(ThreadPool, JobsOfEveryWidthCoverTheirRangesExactlyOnce) {
  // Jobs that use 1, 2 or all 3 threads, and run_on_all, back to back: a run's cursor keeps
  // the epoch of the job that last took from it, so a run left untouched by narrow jobs must
  // still be read as whole by the next wide one.
  ThreadPool pool(3);
  const int64_t sizes[] = {1, 2, 5, 17, 48, 100, 1000};
  const int64_t grains[] = {1, 3, 16};
  std::vector<std::atomic<int>> hits(1000);
  for (int job = 0; job < 3000; ++job) {
    const int64_t n = sizes[job % 7], grain = grains[(job / 7) % 3];
    for (int64_t i = 0; i < n; ++i)
      hits[static_cast<size_t>(i)].store(0, std::memory_order_relaxed);
    pool.parallel_for(n, grain, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
    });
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "job " << job << " n " << n;
    if (job % 5 == 0) {
      std::atomic<int> calls[3] = {0, 0, 0};
      pool.run_on_all([&](int t) { calls[t].fetch_add(1); });
      for (auto& c : calls) ASSERT_EQ(c.load(), 1);
    }
  }
}

TEST(ThreadPool, SleepingWorkersWakeForTheNextJob) {
  // Past their spin the workers sleep; a job must still reach every one of them.
  ThreadPool pool(3);
  for (int rep = 0; rep < 3; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::atomic<int> calls[3] = {0, 0, 0};
    pool.run_on_all([&](int t) { calls[t].fetch_add(1); });
    for (auto& c : calls) EXPECT_EQ(c.load(), 1);
  }
}

TEST(ThreadPool, RunsPartitionTheRange) {
  // run_of names each thread's own run of a parallel_for (where a thread starts: what it may
  // prefetch): in order, without gaps or overlaps, whole grains but for the last.
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 64, 1000, 100000}) {
    for (int64_t grain : {1, 4, 16}) {
      int64_t next = 0;
      for (int t = 0; t < 3; ++t) {
        int64_t b = -1, e = -1;
        if (!pool.run_of(t, n, grain, b, e)) continue;
        EXPECT_EQ(b, next) << "n " << n << " grain " << grain << " t " << t;
        EXPECT_LT(b, e);
        EXPECT_EQ(b % grain, 0);
        next = e;
      }
      EXPECT_EQ(next, n) << "n " << n << " grain " << grain;
    }
  }
  int64_t b = 0, e = 0;
  EXPECT_FALSE(pool.run_of(1, 1, 1, b, e));  // one grain: the caller's alone
  EXPECT_FALSE(pool.run_of(0, 0, 1, b, e));
}

TEST(ThreadPool, JobsThatPrefetchWhileWaitingStillCoverTheirRanges) {
  // Threads that prefetch (some from a buffer, one from nowhere) between jobs and while the
  // caller waits: every job still runs each index once.
  ThreadPool pool(3);
  std::vector<char> buf(1 << 20);
  WaitPrefetch then;
  then.at[0] = buf.data();
  then.at[1] = nullptr;
  then.at[2] = buf.data() + (512 << 10);
  then.bytes = 256 << 10;
  std::vector<std::atomic<int>> hits(1000);
  for (int job = 0; job < 500; ++job) {
    const int64_t n = 1 + job % 1000;
    for (int64_t i = 0; i < n; ++i)
      hits[static_cast<size_t>(i)].store(0, std::memory_order_relaxed);
    pool.parallel_for(
        n, 1 + job % 16,
        [&](int, int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
        },
        job % 2 == 0 ? &then : nullptr);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "job " << job;
  }
}

TEST(HugePages, MappingsStartAtA2MBBoundaryAndHoldWhatIsWritten) {
  for (size_t bytes : {size_t{1}, size_t{4096}, size_t{3} << 20, (size_t{5} << 20) + 123}) {
    for (bool noreserve : {false, true}) {
      void* p = map_huge_pages(bytes, noreserve);
      ASSERT_NE(p, MAP_FAILED);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageBytes, 0u) << bytes;
      auto* c = static_cast<unsigned char*>(p);
      std::memset(c, 0xA5, bytes);
      EXPECT_EQ(c[0], 0xA5);
      EXPECT_EQ(c[bytes - 1], 0xA5);
      EXPECT_EQ(munmap(p, (bytes + 4095) & ~size_t{4095}), 0);
    }
  }
  // A reserved range (no access), as the GGUF reader maps files over.
  void* r = map_at_huge_boundary(size_t{7} << 20, PROT_NONE, MAP_NORESERVE);
  ASSERT_NE(r, MAP_FAILED);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r) % kHugePageBytes, 0u);
  EXPECT_EQ(munmap(r, size_t{7} << 20), 0);
}

TEST(Rng, DeterministicAndNormalish) {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next_u64(), b.next_u64());
  Rng r(7);
  double s = 0, s2 = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
}

}  // namespace
}  // namespace strata
