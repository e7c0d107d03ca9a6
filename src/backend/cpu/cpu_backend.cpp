// CpuBackend: dispatch each op to the fast kernels or, in reference mode, the scalar twins.
#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "backend/cpu/attention.h"
#include "backend/cpu/deltanet.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/ref_ops.h"
#include "core/check.h"

namespace strata::backend::cpu {

CpuBackend::CpuBackend(int num_threads, bool reference) : pool_(num_threads), reference_(reference) {}
CpuBackend::~CpuBackend() = default;

float* CpuBackend::alloc_f32(size_t count) {
  // 64-byte aligned (a cache line); at least one element so the pointer is unique.
  const size_t bytes = ((std::max<size_t>(count, 1) * sizeof(float)) + 63) & ~size_t{63};
  void* p = std::aligned_alloc(64, bytes);
  STRATA_CHECK_MSG(p != nullptr, "alloc_f32: out of memory");
  return static_cast<float*>(p);
}
void CpuBackend::free(void* p) { std::free(p); }
void CpuBackend::copy_to_host(const float* src, size_t count, float* dst) {
  std::memcpy(dst, src, count * sizeof(float));
}
void CpuBackend::copy_from_host(const float* src, size_t count, float* dst) {
  std::memcpy(dst, src, count * sizeof(float));
}

void CpuBackend::get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  if (reference_) return ref::get_rows(w, ids, n, out);
  cpu::get_rows(pool_, w, ids, n, out);
}
void CpuBackend::matmul(const WeightView& w, const float* x, int64_t n, float* y) {
  if (reference_) return ref::matmul(w, x, n, y);
  cpu::matmul(pool_, scratch_, w, x, n, y);
}
void CpuBackend::matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n, std::span<float* const> ys) {
  if (reference_) return Backend::matmul_multi(ws, x, n, ys);
  cpu::matmul_multi(pool_, scratch_, ws, x, n, ys);
}
void CpuBackend::matmul_experts(const WeightView& w, const float* x, bool x_per_slot,
                                const int32_t* ids, int64_t n, int k, float* y) {
  if (reference_) return ref::matmul_experts(w, x, x_per_slot, ids, n, k, y);
  cpu::matmul_experts(pool_, scratch_, w, x, x_per_slot, ids, n, k, y);
}
void CpuBackend::rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                          float* out) {
  if (reference_) return ref::rms_norm(x, weight, n, dim, eps, out);
  cpu::rms_norm(pool_, x, weight, n, dim, eps, out);
}
void CpuBackend::rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
                      const RopeTable& table) {
  if (reference_) return ref::rope(x, n, num_heads, head_dim, positions, table);
  cpu::rope(pool_, x, n, num_heads, head_dim, positions, table);
}
void CpuBackend::kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n,
                          const int32_t* slots) {
  if (reference_) return ref::kv_store(kv, k, v, n, slots);
  cpu::kv_store(pool_, kv, k, v, n, slots);
}
void CpuBackend::attention(const float* q, int num_heads, const PagedKv& kv,
                           std::span<const SeqAttention> seqs, float scale, float* out) {
  if (reference_) return ref::attention(q, num_heads, kv, seqs, scale, out);
  cpu::attention(pool_, q, num_heads, kv, seqs, scale, out);
}
void CpuBackend::swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) {
  if (reference_) return ref::swiglu(gate, up, n, dim, out);
  cpu::swiglu(pool_, gate, up, n, dim, out);
}
void CpuBackend::add(float* y, const float* x, int64_t count) {
  if (reference_) return ref::add(y, x, count);
  cpu::add(pool_, y, x, count);
}
void CpuBackend::topk_softmax(const float* logits, int64_t n, int num_experts, int k,
                              bool renormalize, int32_t* ids, float* weights) {
  if (reference_) return ref::topk_softmax(logits, n, num_experts, k, renormalize, ids, weights);
  cpu::topk_softmax(pool_, logits, n, num_experts, k, renormalize, ids, weights);
}
void CpuBackend::weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                              float* out) {
  if (reference_) return ref::weighted_sum(x, weights, n, k, dim, out);
  cpu::weighted_sum(pool_, x, weights, n, k, dim, out);
}

void CpuBackend::ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
                          std::span<const RecurrentSeg> segs, float* out) {
  if (reference_) ref::ssm_conv(x, channels, weight, kernel, segs, out);
  else cpu::ssm_conv(pool_, x, channels, weight, kernel, segs, out);
}
void CpuBackend::gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                                  const float* dt_bias, const float* a, const DeltaNetShape& shape,
                                  std::span<const RecurrentSeg> segs, float* out) {
  if (reference_) ref::gated_delta_rule(qkv, alpha, beta, dt_bias, a, shape, segs, out);
  else cpu::gated_delta_rule(pool_, qkv, alpha, beta, dt_bias, a, shape, segs, out);
}
void CpuBackend::sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim) {
  if (reference_) ref::sigmoid_mul(x, gate, n, dim, gate_dim);
  else cpu::sigmoid_mul(pool_, x, gate, n, dim, gate_dim);
}

}  // namespace strata::backend::cpu
