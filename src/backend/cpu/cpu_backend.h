// The CPU backend: AVX2/FMA kernels on a thread pool, or (reference mode) the scalar twins in
// ref_ops.h, so a whole forward can be checked against obviously-right code.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu {

class CpuBackend final : public Backend {
 public:
  // num_threads counts the caller; 0 = all hardware threads. reference: run the scalar twins.
  explicit CpuBackend(int num_threads = 0, bool reference = false);
  ~CpuBackend() override;

  std::string name() const override { return reference_ ? "cpu-reference" : "cpu"; }
  int num_threads() const override { return pool_.num_threads(); }
  bool reference() const { return reference_; }
  ThreadPool& pool() { return pool_; }

  float* alloc_f32(size_t count) override;
  void free(void* p) override;
  void copy_to_host(const float* src, size_t count, float* dst) override;
  void copy_from_host(const float* src, size_t count, float* dst) override;

  void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) override;
  void matmul(const WeightView& w, const float* x, int64_t n, float* y) override;
  void matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n, std::span<float* const> ys) override;
  void matmul_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                      int64_t n, int k, float* y) override;
  void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                float* out) override;
  void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
            const RopeTable& table) override;
  void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n,
                const int32_t* slots) override;
  void attention(const float* q, int num_heads, const PagedKv& kv,
                 std::span<const SeqAttention> seqs, float scale, float* out) override;
  void swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) override;
  void add(float* y, const float* x, int64_t count) override;
  void topk_softmax(const float* logits, int64_t n, int num_experts, int k, bool renormalize,
                    int32_t* ids, float* weights) override;
  void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                    float* out) override;
  void synchronize() override {}

  bool supports_delta_net() const override { return true; }
  void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
                std::span<const RecurrentSeg> segs, float* out) override;
  void gated_delta_rule(const float* qkv, const float* alpha, const float* beta, const float* dt_bias,
                        const float* a, const DeltaNetShape& shape, std::span<const RecurrentSeg> segs,
                        float* out) override;
  void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim) override;

 private:
  ThreadPool pool_;
  bool reference_;
  MatmulScratch scratch_;
};

}  // namespace strata::backend::cpu

namespace strata::backend {
using cpu::CpuBackend;
}  // namespace strata::backend
