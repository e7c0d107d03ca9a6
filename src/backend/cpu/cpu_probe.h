// Hardware limits the CPU kernels are judged against (strata bench prints them): streaming
// read bandwidth and f32 FMA peak, both measured with all threads of the pool.
#pragma once

#include "core/thread_pool.h"

namespace strata::backend::cpu {

// cpu_time: time by this process's CPU time instead of the wall clock; with one thread on a
// busy machine that still shows what a core does per cycle it actually gets (benches only).

// Read-only streaming sum over a buffer well past the last-level cache (bytes read / s), best
// of a few passes with plain loads and with software prefetch; the buffer in 2 MB pages where
// the kernel gives them. buffer_bytes = 0: 512 MiB.
double measure_memory_bandwidth_gbs(ThreadPool& pool, size_t buffer_bytes = 0, bool cpu_time = false);

// The same probe with its buffer allocated and placed once, for repeated short measurements
// (strata bench probes between stretches of decode: this VM's bandwidth changes within
// seconds, bench/cpu/NOTES.md).
class BandwidthProbe {
 public:
  BandwidthProbe(ThreadPool& pool, size_t buffer_bytes);
  ~BandwidthProbe();
  BandwidthProbe(const BandwidthProbe&) = delete;
  BandwidthProbe& operator=(const BandwidthProbe&) = delete;
  // Best of `passes` passes (plain loads, then software prefetch, alternating), GB/s.
  double measure(int passes, bool cpu_time = false);

 private:
  ThreadPool& pool_;
  float* buf_;
  size_t bytes_;
};
// Register-resident AVX2 FMA loop on every thread: 2 flops per lane per FMA, best of a few runs.
double measure_fma_peak_gflops(ThreadPool& pool, bool cpu_time = false);

// Seconds on a wall clock, or of this process's CPU time.
double probe_clock_s(bool cpu_time = false);

}  // namespace strata::backend::cpu
