// Hardware limits the CPU kernels are judged against (strata bench prints them): streaming
// read bandwidth and f32 FMA peak, both measured with all threads of the pool.
#pragma once

#include "core/thread_pool.h"

namespace strata::backend::cpu {

// Read-only streaming sum over a buffer well past the last-level cache (bytes read / s), best
// of a few passes. buffer_bytes = 0: 512 MiB.
double measure_memory_bandwidth_gbs(ThreadPool& pool, size_t buffer_bytes = 0);
// Register-resident AVX2 FMA loop on every thread: 2 flops per lane per FMA, best of a few runs.
double measure_fma_peak_gflops(ThreadPool& pool);

// Seconds on a wall clock, or (cpu_time) of this process's CPU time: with one thread on a
// busy machine, CPU time still shows what a core does per cycle it actually gets.
double probe_clock_s(bool cpu_time = false);
void set_probe_cpu_time(bool cpu_time);  // the probes above use probe_clock_s(this flag)

}  // namespace strata::backend::cpu
