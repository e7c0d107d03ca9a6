// Bandwidth and FMA-peak probes (see cpu_probe.h).
#include "backend/cpu/cpu_probe.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "backend/cpu/simd.h"
#include "core/check.h"
#include "core/huge_pages.h"

namespace strata::backend::cpu {
namespace {


std::atomic<float> g_sink{0};  // keeps the sums alive

// kAhead > 0: also software-prefetch (NTA) that many bytes ahead, as the decode kernels do.
template <int kAhead>
float stream_sum(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
         a3 = _mm256_setzero_ps();
  for (size_t i = 0; i + 32 <= n; i += 32) {
    if constexpr (kAhead > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i) + kAhead, _MM_HINT_NTA);
      _mm_prefetch(reinterpret_cast<const char*>(p + i) + kAhead + 64, _MM_HINT_NTA);
    }
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  return simd::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

}  // namespace

double probe_clock_s(bool cpu_time) {
  if (cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

BandwidthProbe::BandwidthProbe(ThreadPool& pool, size_t buffer_bytes) : pool_(pool) {
  bytes_ = buffer_bytes & ~size_t{4095};
  STRATA_CHECK(bytes_ > 0);
  // In 2 MB pages where the kernel gives them (MADV_HUGEPAGE), as the weights are mapped
  // (gguf/reader.cpp): in 4 KB pages this VM's streaming read measured 5-11% less in its fast
  // phase (bench/cpu/NOTES.md, round 9), a yardstick lower than the hardware's limit.
  void* p = map_huge_pages(bytes_, /*noreserve=*/false);
  STRATA_CHECK_MSG(p != MAP_FAILED, "bandwidth probe: out of memory");
  buf_ = static_cast<float*>(p);
  const size_t n = bytes_ / sizeof(float);
  // first touch from the threads that will read (page placement), non-zero data
  pool_.parallel_for(static_cast<int64_t>(n), 1024, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf_[i] = 1.0f;
  });
}

BandwidthProbe::~BandwidthProbe() { munmap(buf_, bytes_); }

double BandwidthProbe::measure(int passes, bool cpu_time) {
  // Each thread streams one contiguous share (not parallel_for's dynamic chunks): one long
  // sequential stream per core is what the hardware prefetchers reward, and what decode does.
  // Passes alternate plain loads and loads with software prefetch 4 KB ahead; the best counts:
  // on this Zen 5 VM the prefetched stream reads 5-13% more with two threads, and the decode
  // kernels prefetch, so a plain-load probe let decode pass 100% of its "roofline".
  const size_t n = bytes_ / sizeof(float);
  const int nt = pool_.num_threads();
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const double t0 = probe_clock_s(cpu_time);
    pool_.run_on_all([&](int t) {
      const size_t b = n / static_cast<size_t>(nt) * static_cast<size_t>(t) / 32 * 32;
      const size_t e = t == nt - 1 ? n : n / static_cast<size_t>(nt) * static_cast<size_t>(t + 1) / 32 * 32;
      const float s =
          pass % 2 == 0 ? stream_sum<0>(buf_ + b, e - b) : stream_sum<4096>(buf_ + b, e - b);
      g_sink.store(s, std::memory_order_relaxed);
    });
    const double dt = probe_clock_s(cpu_time) - t0;
    best = std::max(best, static_cast<double>(bytes_) / dt / 1e9);
  }
  return best;
}

double measure_memory_bandwidth_gbs(ThreadPool& pool, size_t buffer_bytes, bool cpu_time) {
  if (buffer_bytes == 0) buffer_bytes = size_t{512} << 20;
  return BandwidthProbe(pool, buffer_bytes).measure(10, cpu_time);
}

double measure_fma_peak_gflops(ThreadPool& pool, bool cpu_time) {
  constexpr int kAcc = 12;  // independent chains: > FMA latency x FMA ports
  constexpr int64_t kIters = 20'000'000;
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    const double t0 = probe_clock_s(cpu_time);
    pool.run_on_all([&](int ti) {
      // twelve named chains (an array ends up in memory); the empty asm keeps them opaque
      const float f = static_cast<float>(ti);
      __m256 a0 = _mm256_set1_ps(f), a1 = _mm256_set1_ps(f + 1), a2 = _mm256_set1_ps(f + 2),
             a3 = _mm256_set1_ps(f + 3), a4 = _mm256_set1_ps(f + 4), a5 = _mm256_set1_ps(f + 5),
             a6 = _mm256_set1_ps(f + 6), a7 = _mm256_set1_ps(f + 7), a8 = _mm256_set1_ps(f + 8),
             a9 = _mm256_set1_ps(f + 9), a10 = _mm256_set1_ps(f + 10), a11 = _mm256_set1_ps(f + 11);
      const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
      for (int64_t it = 0; it < kIters; ++it) {
        a0 = _mm256_fmadd_ps(a0, a, b);
        a1 = _mm256_fmadd_ps(a1, a, b);
        a2 = _mm256_fmadd_ps(a2, a, b);
        a3 = _mm256_fmadd_ps(a3, a, b);
        a4 = _mm256_fmadd_ps(a4, a, b);
        a5 = _mm256_fmadd_ps(a5, a, b);
        a6 = _mm256_fmadd_ps(a6, a, b);
        a7 = _mm256_fmadd_ps(a7, a, b);
        a8 = _mm256_fmadd_ps(a8, a, b);
        a9 = _mm256_fmadd_ps(a9, a, b);
        a10 = _mm256_fmadd_ps(a10, a, b);
        a11 = _mm256_fmadd_ps(a11, a, b);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                         "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
      }
      const __m256 s = _mm256_add_ps(
          _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                        _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7))),
          _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
      g_sink.store(simd::hsum(s), std::memory_order_relaxed);
    });
    const double dt = probe_clock_s(cpu_time) - t0;
    const double flops = static_cast<double>(pool.num_threads()) * kIters * kAcc * 8 * 2;
    best = std::max(best, flops / dt / 1e9);
  }
  return best;
}

}  // namespace strata::backend::cpu
