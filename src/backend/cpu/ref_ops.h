// Scalar reference kernels: slow, obviously right, single-threaded. Every fast kernel in this
// backend is tested against these; CpuBackend(threads, /*reference=*/true) runs only these.
// Semantics of each op: see backend.h.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace strata::backend::cpu::ref {

// out[n, w.cols] f32 <- rows ids[n] of w
void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out);
// y[n, w.rows] = x[n, w.cols] . dequantize(w)^T, accumulated in double
void matmul(const WeightView& w, const float* x, int64_t n, float* y);
void matmul_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                    int64_t n, int k, float* y);
void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* out);
void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
          const RopeTable& table);
void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n, const int32_t* slots);
// Naive full softmax in double over every visible key.
void attention(const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out);
void swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out);
void add(float* y, const float* x, int64_t count);
void topk_softmax(const float* logits, int64_t n, int num_experts, int k, bool renormalize,
                  int32_t* ids, float* weights);
void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                  float* out);

// Gated DeltaNet (deltanet_ref.cpp): the recurrent form, token by token, in double.
void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
              std::span<const RecurrentSeg> segs, float* out);
void gated_delta_rule(const float* qkv, const float* alpha, const float* beta, const float* dt_bias,
                      const float* a, const DeltaNetShape& shape, std::span<const RecurrentSeg> segs,
                      float* out);
void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim);

// KV element codecs shared with the fast kernels: a row of head_dim values of kv.type.
// (Q8_0 KV: head_dim a multiple of 32, d = amax / 127 in fp16, q = round(x / d).)
void kv_encode_row(DType type, const float* src, void* dst, int64_t n);
void kv_decode_row(DType type, const void* src, float* dst, int64_t n);
bool kv_type_supported(DType type);

// Address of token slot `pos` (of a sequence, through its block table) for head `head`.
inline const uint8_t* kv_row(const void* base, const PagedKv& kv, const int32_t* block_table,
                             int64_t pos, int head, size_t row_bytes) {
  const int64_t block = block_table[pos / kv.block_tokens];
  const int64_t off = pos % kv.block_tokens;
  return static_cast<const uint8_t*>(base) + static_cast<size_t>(block) * kv.block_stride_bytes +
         kv_row_offset(kv, off, head, row_bytes);
}

}  // namespace strata::backend::cpu::ref
