// Bandwidth and FMA-peak probes (see cpu_probe.h).
#include "backend/cpu/cpu_probe.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/simd.h"
#include "core/check.h"

namespace strata::backend::cpu {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::atomic<float> g_sink{0};  // keeps the sums alive

float stream_sum(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
         a3 = _mm256_setzero_ps();
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  return simd::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

}  // namespace

double measure_memory_bandwidth_gbs(ThreadPool& pool, size_t buffer_bytes) {
  if (buffer_bytes == 0) buffer_bytes = size_t{512} << 20;
  buffer_bytes &= ~size_t{4095};
  float* buf = static_cast<float*>(std::aligned_alloc(4096, buffer_bytes));
  STRATA_CHECK(buf != nullptr);
  const size_t n = buffer_bytes / sizeof(float);
  // first touch from the threads that will read (page placement), non-zero data
  pool.parallel_for(static_cast<int64_t>(n), 1024, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[i] = 1.0f;
  });
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const double t0 = now_s();
    pool.parallel_for(static_cast<int64_t>(n), 1024, [&](int, int64_t b, int64_t e) {
      g_sink.store(stream_sum(buf + b, static_cast<size_t>(e - b)), std::memory_order_relaxed);
    });
    const double dt = now_s() - t0;
    best = std::max(best, static_cast<double>(buffer_bytes) / dt / 1e9);
  }
  std::free(buf);
  return best;
}

double measure_fma_peak_gflops(ThreadPool& pool) {
  constexpr int kAcc = 12;  // independent chains: > FMA latency x FMA ports
  constexpr int64_t kIters = 20'000'000;
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    const double t0 = now_s();
    pool.run_on_all([&](int ti) {
      __m256 acc[kAcc];
      for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i + ti));
      const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
      for (int64_t it = 0; it < kIters; ++it) {
        for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
        // keep the compiler from collapsing the loop
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]),
                         "+x"(acc[5]), "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]),
                         "+x"(acc[10]), "+x"(acc[11]));
      }
      __m256 s = acc[0];
      for (int i = 1; i < kAcc; ++i) s = _mm256_add_ps(s, acc[i]);
      g_sink.store(simd::hsum(s), std::memory_order_relaxed);
    });
    const double dt = now_s() - t0;
    const double flops = static_cast<double>(pool.num_threads()) * kIters * kAcc * 8 * 2;
    best = std::max(best, flops / dt / 1e9);
  }
  return best;
}

}  // namespace strata::backend::cpu
