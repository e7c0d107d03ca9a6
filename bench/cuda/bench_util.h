// Shared by the CUDA benchmarks (cuda_bench, cuda_gemv_bench): a checked CUDA call, the
// median of event-timed runs, and the device copy bandwidth every result is judged against.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace strata::bench {

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of `reps` runs of f on stream s, after `warm` untimed runs.
template <class F>
double time_it(cudaStream_t s, int warm, int reps, F&& f) {
  for (int i = 0; i < warm; ++i) f();
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a, s));
    f();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e-3);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return median(t);
}

// Bytes read plus written per second by a large device-to-device copy.
double copy_bandwidth(cudaStream_t s) {
  const size_t bytes = size_t{2} << 30;
  void *src, *dst;
  CK(cudaMalloc(&src, bytes));
  CK(cudaMalloc(&dst, bytes));
  CK(cudaMemset(src, 0x5a, bytes));
  const double t =
      time_it(s, 3, 15, [&] { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s)); });
  CK(cudaFree(src));
  CK(cudaFree(dst));
  return 2.0 * static_cast<double>(bytes) / t;
}

}  // namespace strata::bench
