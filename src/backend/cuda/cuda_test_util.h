// Shared by the CUDA backend's gpu tests (cuda_backend_test.cpp, cuda_deltanet_test.cpp):
// device buffers for host vectors, error measures, and each product's tolerance.
#pragma once

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"
#include "core/quant.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "engine/generator.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/recipe.h"
#include "model/synth.h"


namespace strata::backend::cuda::testing {


using cpu::testing::normal;
using cpu::testing::random_weights;

#define REQUIRE_GPU() \
  if (!CudaBackend::available()) GTEST_SKIP() << "no CUDA device"

// ||a - b|| / ||b||
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Device copies of host vectors, freed with the fixture; outputs poisoned with NaN.
class Gpu {
 public:
  CudaBackend be;
  ~Gpu() {
    for (void* p : bufs_) be.free(p);
  }
  float* up(const std::vector<float>& v) {
    float* d = be.alloc_f32(v.size());
    be.copy_from_host(v.data(), v.size(), d);
    bufs_.push_back(d);
    return d;
  }
  int32_t* up_i32(const std::vector<int32_t>& v) {
    std::vector<float> f(v.size());
    std::memcpy(f.data(), v.data(), v.size() * 4);
    return reinterpret_cast<int32_t*>(up(f));
  }
  float* out(size_t n) { return up(std::vector<float>(n, NAN)); }
  std::vector<float> down(const float* d, size_t n) {
    std::vector<float> h(n);
    be.copy_to_host(d, n, h.data());
    return h;
  }

 private:
  std::vector<void*> bufs_;
};

inline WeightView host_view(const std::vector<uint8_t>& bytes, DType t, int64_t rows, int64_t cols,
                     int64_t experts = 1) {
  WeightView w;
  w.data = bytes.data();
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = row_bytes(t, cols);
  w.num_experts = experts;
  w.expert_bytes = w.row_bytes * static_cast<size_t>(rows);
  return w;
}

// Tolerance of one product: the matrix-vector kernels accumulate in f32 (error ~ 2^-24
// sqrt(cols) relative); the prefill path rounds x and w to bf16 (2^-9 each, random signs).
// Types without a native kernel are held as F16 (2^-11).
inline double matmul_tol(DType t, int64_t n, bool decode_step = false) {
  const bool native = t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 ||
                      t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_K ||
                      t == DType::kQ6_K;
  // Batch 1, and up to kQ8MaxTokens tokens of a decode step, of Q8_0/Q4_0/Q4_K/Q6_K: x
  // rounded to int8 per 32 (step amax/127: ~0.5% rms).
  const bool int8_act =
      t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_K || t == DType::kQ6_K;
  if ((n == 1 || (decode_step && n <= CudaBackend::kQ8MaxTokens)) && int8_act) return 1.5e-2;
  if (n > CudaBackend::kGemvMaxTokens && t != DType::kF32) return 8e-3;
  return native ? 1e-5 : 2e-3;
}

// max |a - b| / rms(b)
inline double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0, ss = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
    ss += double(b[i]) * b[i];
  }
  return mx / std::sqrt(ss / static_cast<double>(b.size()));
}

}  // namespace strata::backend::cuda::testing
