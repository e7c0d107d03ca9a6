// The CUDA backend: activations, weights and K/V in device memory, one stream; quantized
// matrix-vector kernels for decode, cuBLAS on dequantized bf16 tiles for prefill.
// Host arrays of the interface (token ids, positions, slots, block tables) may be host or
// device pointers: host ones are staged to the device per call, or per step in a step graph.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace strata::backend::cuda {

class CudaBackend final : public Backend {
 public:
  // device: CUDA device ordinal. Aborts (with the CUDA error) if the device is unusable;
  // call available() first where a GPU may be missing.
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // Is there a CUDA device (and a driver) on this machine?
  static bool available();

  std::string name() const override { return "cuda"; }
  int num_threads() const override { return 1; }

  float* alloc_f32(size_t count) override;
  void free(void* p) override;
  // Memory that this GPU's kernels and host code both address (CUDA managed memory, preferring
  // the GPU): the KV cache's device tier, whose blocks the host copies between tiers (pages
  // migrate on access). nullptr when the allocation fails. Release with free_shared.
  void* alloc_shared(size_t bytes);
  void free_shared(void* p);
  void copy_to_host(const float* src, size_t count, float* dst) override;
  void copy_from_host(const float* src, size_t count, float* dst) override;
  // Copies the weight to the device. F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K stay in their
  // format; other types are dequantized on the host to F16 (rounding 2^-11 relative).
  WeightView upload_weight(const WeightView& host) override;

  void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) override;
  void matmul(const WeightView& w, const float* x, int64_t n, float* y) override;
  // Batch-1 int8 products of one x run as one launch over all the weights' rows.
  void matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n,
                    std::span<float* const> ys) override;
  void matmul_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                      int64_t n, int k, float* y) override;
  void matmul_experts_shared(const WeightView& w, const WeightView& shared, const float* x,
                             bool x_per_slot, const int32_t* ids, int k, float* y) override;
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
  // Gated DeltaNet (deltanet.cu): the recurrent form, a CTA per (sequence, value head, 32
  // value columns) holding its part of the state in registers. Segments that chain (each
  // reads the state_out of the one before it) must be contiguous rows; the state pointers are
  // device (or managed) memory. Inside step graphs the segment arrays are staged like the
  // other host arrays, sized for one segment per token.
  bool supports_delta_net() const override { return true; }
  void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
                std::span<const RecurrentSeg> segs, float* out) override;
  void gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                        const float* dt_bias, const float* a, const DeltaNetShape& shape,
                        std::span<const RecurrentSeg> segs, float* out) override;
  void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim) override;
  // Page-locked host memory (cudaMallocHost).
  float* alloc_host_f32(size_t count) override;
  void free_host(float* p) override;
  // On the device; 8 bytes a row come back.
  void argmax_rows(const float* x, int64_t rows, int64_t cols, int32_t* out) override;
  void synchronize() override;
  // Steps of at most 64 tokens become CUDA graphs: the first step of a key runs eagerly and
  // measures its staged host arrays, the second is captured, later ones replay the graph
  // after one host-to-device copy of the step's arrays (positions, slots, block tables).
  void begin_step(const StepInfo& step) override;
  void end_step() override;
  // Graphs on (default) or off, for comparisons; only between steps.
  void set_step_graphs(bool on);

  // The backend's CUDA stream (a cudaStream_t), for graph capture and timing by benchmarks.
  // Note: batch-1 products reuse the int8 copy of their input across consecutive products
  // of one x; a capture must begin with a product on an x other than the last one used.
  void* stream() const;

  // Batches of more than this many tokens go to cuBLAS; fewer to the matrix-vector kernels.
  static constexpr int64_t kGemvMaxTokens = 8;
  // Q8_0/Q4_0/Q4_K/Q6_K weights: batches of up to this many tokens take the int8 products
  // (x rounded to int8 per 32, each weight byte read once per 8 tokens), larger ones cuBLAS.
  static constexpr int64_t kQ8MaxTokens = 16;

 private:
  void experts_q8(const WeightView& w, const WeightView* shared, const float* x, bool x_per_slot,
                  const int32_t* ids, int k, float* y);
  void matmul_one(const WeightView& w, const float* x, int64_t n, float* y);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::backend::cuda

namespace strata::backend {
using cuda::CudaBackend;
}  // namespace strata::backend
