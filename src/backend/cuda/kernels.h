// Launchers for the CUDA backend's kernels (matmul.cu, gemv_int8.cu, gemv_experts.cu, ops.cu,
// attention.cu, ...). Every pointer is device memory unless its comment says otherwise; every
// launch is checked.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace strata::backend::cuda {

void check_cuda(cudaError_t e, const char* what, const char* file, int line);
#define STRATA_CUDA_CHECK(x) ::strata::backend::cuda::check_cuda((x), #x, __FILE__, __LINE__)
#define STRATA_CUDA_LAUNCH_CHECK() STRATA_CUDA_CHECK(cudaGetLastError())

// Programmatic dependent launch (launch.cuh): 0 launches without the attribute (each kernel
// starts after the previous one ends); 1 (default) on, the small one-token kernels between
// products (residual norm, head chain, attention merge, SwiGLU) letting the next kernel launch
// at their start, so that its CTAs are resident and waiting while they run, and the Q8_0
// int8 products loading their first part's weights into registers before their wait. For
// comparisons: 2 as 1, with the int8 products' weight rows prefetched into L2 before their
// wait; 3 on without early launches or loads (round 8's form); 4 as 1 with every int8 product
// type loading early; 5 as 1 with none.
// STRATA_CUDA_PDL in the environment at start, or set_pdl_mode (tests, benches).
int pdl_mode();
void set_pdl_mode(int mode);
// Do the small kernels let the next kernel launch at their start (all modes but 0 and 3)?
inline bool pdl_early() { return pdl_mode() != 0 && pdl_mode() != 3; }
// Do the int8 products prefetch their weight rows into L2 before their wait (mode 2)?
inline bool pdl_prefetch() { return pdl_mode() == 2; }
// The int8 products' start: bit 0 the L2 prefetch; bit 1 Q8_0 products, bit 2 every type, load
// their first part's weights before their wait.
inline int pdl_product_start() {
  const int m = pdl_mode();
  return (m == 2 ? 1 : 0) | (m == 1 || m == 2 ? 2 : 0) | (m == 4 ? 4 : 0);
}

// Does the backend compute with this type directly (else upload converts it to F16)?
bool native_type(DType type);
int native_block_elems(DType type);

// y[n, w.rows] = x[n, w.cols] . w^T, decoding w in registers (n small: each weight byte is
// read once per group of up to 8 tokens).
void gemv(const WeightView& w, const float* x, int64_t n, float* y, cudaStream_t s);
// Batch-1 products on int8 activations (gemv_q8.cuh) for Q8_0, Q4_0, Q4_K, Q6_K: x [cols]
// is quantized into xq [cols] int8, xd [cols/32] f32, xs [cols/16] int32 first.
// Weights need 16 readable bytes past their end (upload_weight pads them): the 2-byte-aligned
// formats load whole words.
bool gemv_q8_supported(DType type);
void quantize_act_q8(const float* x, int64_t cols, int8_t* xq, float* xd, int32_t* xs,
                     cudaStream_t s);
void gemv_q8(const WeightView& w, const int8_t* xq, const float* xd, const int32_t* xs, float* y,
             cudaStream_t s);
// The int8 copy of one token's x: xq [cols] int8, xd [cols/32] f32, xs [cols/16] int32.
struct Q8Buf {
  int8_t* xq;
  float* xd;
  int32_t* xs;
};
// ys[i][ws[i].rows] = ws[i] . x for count <= kMaxGemvSegments weights of one cols (types as
// gemv_q8), one launch: q/k/v, gate/up.
constexpr size_t kMaxGemvSegments = 4;
// Rows per CTA of the int8 products: 0 (default) picks by size; 2, 4 or 8 force it (bench).
void set_gemv_q8_rows(int rows_per_cta);
// The int8 product's kernel: 0 (default: by shape), 5 (a warp per row) or 3 (a CTA's threads
// over R rows' parts). STRATA_CUDA_GEMV=3 or 5 in the environment picks one at start.
void set_gemv_q8_variant(int variant);
// The Q6_K int8 product's part: 2 (default: two groups of 16 a part, DotQ6_K2) or 1
// (DotQ6_K, a group a part; the kernel before run 40). STRATA_CUDA_Q6K=1 picks the old one.
void set_gemv_q6k_groups(int groups);
// The Q4_K part of the batch-1 and expert int8 products: 64 elements (default, DotQ4_K64) or
// 32 (DotQ4_K, the kernel before run 51). STRATA_CUDA_Q4K=32 picks the old one.
void set_gemv_q4k_elems(int elems);
int gemv_q4k_elems();
int gemv_q6k_groups();
// Parts of a row of cols elements the int8 products walk (their unit of work a thread).
int64_t gemv_q8_row_parts(DType type, int64_t cols);
// y[n, w.rows] for n tokens of x [n, w.cols] (int8 copy of all n rows in x), types as gemv_q8:
// each weight part is decoded once for up to 8 tokens.
void gemv_q8_tokens(const WeightView& w, const Q8Buf& x, int64_t n, float* y, cudaStream_t s);
void gemv_q8_multi(const WeightView* ws, float* const* ys, int count, const Q8Buf& x,
                   cudaStream_t s);
// Expert slots: y[n*k, w.rows], slot j = t*k + s uses expert ids[j] (device) and
// x row (x_per_slot ? j : t).
void gemv_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                  int64_t n, int k, float* y, cudaStream_t s);
// Expert slots on int8 activations (types as gemv_q8): for each of count <= 2 weights of one
// cols (gate and up, one launch), ys[i][j, ws[i].rows] = ws[i][ids[j]] . x row, j < n*k, where
// x row = j if x_per_slot else j / k, quantized in xb as quantize_act_q8 does ([rows, cols]).
// With shared (count weights, each ws[i]'s rows and cols): a token has k + 1 slots, the
// last one computed with shared[i] (y [n, k + 1, rows]; x rows per slot the same way).
void gemv_q8_experts(const WeightView* ws, float* const* ys, int count, const Q8Buf& xb,
                     bool x_per_slot, const int32_t* ids, int64_t n, int k, cudaStream_t s,
                     const WeightView* shared = nullptr);
// MoE prefill (CudaBackend::matmul_experts of many tokens): the slots of expert e are
// order[offsets[e] .. offsets[e + 1]) (device). Gather: xb[e, i, cols] bf16 <- x row of the
// i-th slot of e (x row = slot if x_per_slot else slot / k), zeros past its count, i <
// max_count. Scatter: y[slot, rows] <- yb[e, i, rows] for the same slots.
void moe_gather_bf16(const float* x, int64_t cols, bool x_per_slot, int k, const int32_t* order,
                     const int32_t* offsets, int experts, int64_t max_count, __nv_bfloat16* xb,
                     cudaStream_t s);
void moe_scatter(const float* yb, int64_t rows, const int32_t* order, const int32_t* offsets,
                 int experts, int64_t max_count, float* y, cudaStream_t s);
// out[w.rows, w.cols] bf16 <- dequantize(w)
void dequantize_bf16(const WeightView& w, __nv_bfloat16* out, cudaStream_t s);
// out[n, w.cols] f32 <- rows ids[n] (device) of w
void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out, cudaStream_t s);
// out[count] bf16 <- x[count] f32
void f32_to_bf16(const float* x, size_t count, __nv_bfloat16* out, cudaStream_t s);

void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* out,
              cudaStream_t s);
// out = rms_norm(x) as above, where first, if add_y: add_y += add_x and x is add_y (the
// residual add before the norm, in the same kernel); if q8 (n == 1, dim % 32 == 0): out is
// also quantized into q8 as quantize_act_q8 would.
void rms_norm_fused(float* add_y, const float* add_x, const float* x, const float* weight,
                    int64_t n, int64_t dim, float eps, float* out, const Q8Buf* q8,
                    cudaStream_t s);
// out[dim] = silu(gate) * up, also quantized into q8 (dim % 32 == 0).
void swiglu_q8(const float* gate, const float* up, int64_t dim, float* out, const Q8Buf& q8,
               cudaStream_t s);
// The residual of one token (decode_fused.cu): y[dim] += its terms (each optional, in this
// order), then, if weight, out = rms_norm(y) * weight and its int8 copy into q8 (if set).
//   plain: y += plain
//   gated: g = *gate, or g = dot(gate_w, gate_x) [dim] (stored to *gate_out if set);
//          gated *= sigmoid(g) (stored back), y += gated
//   fo:    s = sum_j fw[j] * fo[j, dim] for j < k (stored to fo_out if set, unless fo_out is
//          out and the norm runs); y += s
// gate_x may be out (the dot is taken before out is written). dim % 128 == 0, dim <= 8192.
struct ResidualTerms {
  const float* plain = nullptr;
  float* gated = nullptr;
  const float* gate = nullptr;
  const float* gate_w = nullptr;
  const float* gate_x = nullptr;
  float* gate_out = nullptr;
  const float* fo = nullptr;
  const float* fw = nullptr;
  int k = 0;
  float* fo_out = nullptr;
};
bool residual_norm_supported(int64_t dim);
void residual_norm(float* y, const ResidualTerms& t, const float* weight, int64_t dim, float eps,
                   float* out, const Q8Buf* q8, cudaStream_t s);
// out[rows, dim] = rms_norm(x) * w * silu(z) per row (the Gated DeltaNet output gate), and
// its int8 copy (rows * dim elements, as quantize_act_q8). dim % 32 == 0, dim <= 256.
void gated_norm_q8(const float* x, const float* w, const float* z, int64_t rows, int dim,
                   float eps, float* out, const Q8Buf& q8, cudaStream_t s);
struct RopeArgs {
  static constexpr int kMaxPairs = 256;
  int mode_neox = 0;
  int half = 0;
  float mscale = 1;
  float freqs[kMaxPairs];
};
void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
          const RopeArgs& args, cudaStream_t s);
void swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s);
// One launch for the per-head ops of a step (decode): for each of count <= 2 ops, rows
// [op.rows] of x [rows, dim] f32 in place: RMSNorm by norm_w [dim] (if set), then RoPE at
// positions pos [rows / heads] with rope[i] (if pos is set); if store, op[count - 1] is K
// [n, kv.num_kv_heads, dim] and it and v (same shape) go into kv at slots [n], as kv_store.
constexpr int kHeadChainMaxDim = 256;
struct HeadRowOp {
  float* x;
  const float* norm_w;
  float eps;
  int64_t rows;
  int heads;
  const int32_t* pos;
};
struct HeadChainArgs {
  HeadRowOp op[2];
  int count;
  int dim;
  RopeArgs rope[2];
  bool store;
  PagedKv kv;
  const float* v;
  const int32_t* slots;
  size_t row_bytes;
  bool early = false;  // pdl_early()
};
void head_chain(const HeadChainArgs& a, cudaStream_t s);

void add(float* y, const float* x, int64_t count, cudaStream_t s);
// keys[r] (zeroed here) = (order key of the row's largest value << 32) | ~its first index:
// Backend::argmax_rows on the device. rows <= 65535.
void argmax_rows(const float* x, int64_t rows, int64_t cols, unsigned long long* keys, cudaStream_t s);
void topk_softmax(const float* logits, int64_t n, int num_experts, int k, bool renormalize,
                  int32_t* ids, float* weights, cudaStream_t s);
void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim, float* out,
                  cudaStream_t s);
void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n, const int32_t* slots,
              cudaStream_t s);

// One sequence of an attention call, with its block table at tables + table_offset.
struct AttnSeq {
  int64_t q_begin, q_count, kv_len;
  int64_t table_offset;
};
struct AttnArgs {
  const float* q;  // [rows, num_heads, head_dim]
  int num_heads;
  int64_t num_rows;        // rows of q (and out)
  const AttnSeq* seqs;     // [num_seqs]
  const int32_t* row_seq;  // [num_rows] sequence of each row, -1: none
  const int32_t* tables;   // block tables, concatenated
  float scale;
  int64_t max_keys;  // longest kv_len of the call
  float* out;        // [rows, num_heads, head_dim]
  float* partial;    // scratch for split-K: [splits, rows, heads, head_dim + 2]
  size_t partial_floats;
  const int2* tiles;  // tiled prefill: (sequence, first row) of each 64-row tile
  int64_t num_tiles;
  Q8Buf q8{};  // set (one row, head_dim % 32 == 0): the split-K merge also writes out's int8 copy
};
// Split-K: the keys of each query are cut into splits merged by a second kernel.
size_t attention_partial_floats(const PagedKv& kv, const AttnArgs& a);
// Returns whether a.q8 was written (only by the split-K merge).
bool attention(const PagedKv& kv, const AttnArgs& a, cudaStream_t s);
// Prefill (attention_prefill.cu): tensor-core tiles, a CTA per (attention_tile_rows query
// positions of one sequence, KV head), used when some sequence brings at least 16 queries
// (F16/BF16/Q8_0 K/V, head_dim 64 or 128, at most 64 query heads a KV head).
int attention_tile_rows(const PagedKv& kv, int num_heads);
bool attention_uses_tiles(const PagedKv& kv, int num_heads, int64_t max_q_count);
// Warps a prefill CTA (16 rows each): 8 (default) or 4 (bench, tests).
void set_attention_prefill_warps(int warps);
void attention_prefill(const PagedKv& kv, const AttnArgs& a, cudaStream_t s);

// Gated DeltaNet (deltanet.cu). The segments of a call as the kernels read them: chains of
// segments where each reads the state the one before wrote (one sequence's stretch of rows,
// contiguous in the batch); chains are independent of one another.
struct DnSeg {
  int64_t row_begin, num_rows;
  const float* state_in;  // read only for a chain's first segment (null: zeros)
  float* state_out;
};
struct DnChain {
  int64_t row_begin;         // the chain's first row
  int32_t seg_begin, seg_end;  // its segments in segs
};
struct DnPlan {
  const int32_t* num_chains;  // device: chains in use (<= max_chains)
  const DnChain* chains;
  const DnSeg* segs;
  const int32_t* row_chain;   // [rows]: the chain of each row, -1: none
  int64_t rows;
  int64_t max_chains;         // launch size
};
// Causal depthwise conv + SiLU with per-segment state (Backend::ssm_conv); kernel <= 8.
void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
              const DnPlan& plan, float* out, cudaStream_t s);
// The gated delta rule (Backend::gated_delta_rule), recurrent form; head_k_dim <= 256. For
// more than 64 rows it first normalises q, k and computes the gates of every row into
// scratch (gated_delta_rule_scratch_floats; null: staged inside the kernel instead).
size_t gated_delta_rule_scratch_floats(const DeltaNetShape& sh, const DnPlan& plan);
void gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                      const float* dt_bias, const float* a, const DeltaNetShape& sh,
                      const DnPlan& plan, float* scratch, float* out, cudaStream_t s);
void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim,
                 cudaStream_t s);
// One row: x[dim] *= sigmoid(gate[dim]), and its int8 copy into q8 (dim % 32 == 0).
void sigmoid_mul_q8(float* x, const float* gate, int64_t dim, const Q8Buf& q8, cudaStream_t s);
// x[i] *= sigmoid(gate[i / gate_every]); y[i] += x[i] (sigmoid_mul with one gate a row, then
// add, in one kernel, with the same arithmetic).
void gated_add(float* y, float* x, const float* gate, int64_t count, int64_t gate_every,
               cudaStream_t s);

}  // namespace strata::backend::cuda
