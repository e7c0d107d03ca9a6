// The ops interface every backend implements. Model code calls only these; backends never
// know the model. Activations are f32 in the backend's memory; weights are viewed in their
// file format (never converted on load); K/V live in paged blocks read through block tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/argmax.h"
#include "core/dtype.h"
#include "core/check.h"
#include "core/status.h"

namespace strata::backend {

// A weight matrix as stored in a GGUF file: `rows` rows (output features) of `cols` elements
// (input features) of `type`, rows `row_bytes` apart. For expert tensors, `num_experts`
// matrices `expert_bytes` apart.
struct WeightView {
  const void* data = nullptr;
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
  int64_t num_experts = 1;
  size_t expert_bytes = 0;
};

// Rotary embedding, precomputed by the model from GGUF metadata (linear, YaRN, Llama 3
// scaling all reduce to a per-pair frequency and a magnitude factor).
struct RopeTable {
  enum class Mode { kNormal, kNeox };  // kNormal rotates pairs (2i, 2i+1); kNeox pairs (i, i+n_rot/2)
  Mode mode = Mode::kNormal;
  int n_rot = 0;              // rotated dims per head (<= head_dim); the rest pass through
  std::vector<float> freqs;   // [n_rot / 2] angle per position for each pair
  float mscale = 1.0f;        // multiplies cos and sin (YaRN attention factor)
};

// One layer's K and V in the device tier: blocks of `block_tokens` tokens, each block
// [num_kv_heads, block_tokens, head_dim] of `type` (heads major: one head's rows of a block
// are one contiguous run, which a decode step's per-head reads stream through; kv/layout.h),
// consecutive blocks `block_stride_bytes` apart from `k` (and from `v`).
struct PagedKv {
  void* k = nullptr;
  void* v = nullptr;
  DType type = DType::kF16;
  int block_tokens = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  size_t block_stride_bytes = 0;
};

#if defined(__CUDACC__)
#define STRATA_HOST_DEVICE __host__ __device__
#else
#define STRATA_HOST_DEVICE
#endif
// Bytes from a block's start to KV head `head`'s row of the token `off` places into the block
// (row_bytes: one row of head_dim values of kv.type). Every reader and writer of K/V rows goes
// through here.
STRATA_HOST_DEVICE inline size_t kv_row_offset(const PagedKv& kv, int64_t off, int head,
                                               size_t row_bytes) {
  return (static_cast<size_t>(head) * static_cast<size_t>(kv.block_tokens) +
          static_cast<size_t>(off)) *
         row_bytes;
}

// One sequence of a batched attention call. Its queries are rows [q_begin, q_begin+q_count)
// of q; its keys are positions [0, kv_len) read through block_table (kv_len tokens, so
// ceil(kv_len / block_tokens) entries). Query i sits at position kv_len - q_count + i and
// sees keys at positions <= its own (causal).
struct SeqAttention {
  int64_t q_begin = 0;
  int64_t q_count = 0;
  int64_t kv_len = 0;
  const int32_t* block_table = nullptr;
};

// One stretch of a sequence for the recurrent ops (Gated DeltaNet): rows [row_begin,
// row_begin + num_rows) of the batch, the tokens at positions [pos_begin, pos_begin + num_rows).
// The state as of the token before the first row is read from state_in (null: zeros, the
// sequence starts here); the state as of the last row is written to state_out (may equal
// state_in). Segments of one sequence come in position order; a later segment may read what
// an earlier one wrote. (The model cuts sequences at KV block boundaries so that each block
// keeps the state as of its last token: the prefix cache stores it with the block.)
struct RecurrentSeg {
  int64_t row_begin = 0;
  int64_t num_rows = 0;
  int64_t pos_begin = 0;
  const float* state_in = nullptr;
  float* state_out = nullptr;
};

// Head shapes of a Gated DeltaNet layer. Value head h reads query/key head h % num_k_heads
// (the GGUF files' "tiled" order).
struct DeltaNetShape {
  int num_k_heads = 0;
  int num_v_heads = 0;
  int head_k_dim = 0;
  int head_v_dim = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int num_threads() const = 0;

  // Memory for activations: f32 buffers the ops read and write. (For the CPU backend these
  // are host pointers.)
  virtual float* alloc_f32(size_t count) = 0;
  virtual void free(void* p) = 0;
  virtual void copy_to_host(const float* src, size_t count, float* dst) = 0;
  virtual void copy_from_host(const float* src, size_t count, float* dst) = 0;

  // A weight the model will pass to the ops, moved into the backend's memory. `host` points
  // into the mmapped file (or model-owned f32); the result stays valid as long as the backend.
  // CPU: the identity (weights are read in place). CUDA: a device copy, possibly converted to
  // a type its kernels compute with (see CudaBackend::upload_weight).
  virtual WeightView upload_weight(const WeightView& host) { return host; }

  // out[n, w.cols] f32 <- rows ids[n] of w (embedding lookup, any weight type)
  virtual void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) = 0;
  // y[n, w.rows] = x[n, w.cols] . w^T
  virtual void matmul(const WeightView& w, const float* x, int64_t n, float* y) = 0;
  // Expert products: for token t and slot s (< k), expert e = ids[t*k+s]:
  // y[t, s, w.rows] = x_row . w[e]^T, where x_row = x[t, :] if !x_per_slot else x[t, s, :].
  // Implementations batch all rows that use one expert.
  virtual void matmul_experts(const WeightView& w, const float* x, bool x_per_slot,
                              const int32_t* ids, int64_t n, int k, float* y) = 0;
  // One token's expert products with a shared expert as slot k: y[s, w.rows] for s < k as
  // matmul_experts (n = 1), and y[k, w.rows] = x_row(k) . shared^T (shared.rows == w.rows,
  // same cols). Backends may run all k + 1 in one launch; the default is the two ops.
  virtual void matmul_experts_shared(const WeightView& w, const WeightView& shared, const float* x,
                                     bool x_per_slot, const int32_t* ids, int k, float* y) {
    matmul_experts(w, x, x_per_slot, ids, 1, k, y);
    matmul(shared, x_per_slot ? x + static_cast<int64_t>(k) * w.cols : x, 1, y + static_cast<int64_t>(k) * w.rows);
  }
  // out[n, dim] = x / rms(x) * weight  (weight [dim] f32); out may alias x
  virtual void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                        float* out) = 0;
  // x[n, num_heads, head_dim] rotated in place at positions[n]
  virtual void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
                    const RopeTable& table) = 0;
  // Store k, v [n, num_kv_heads, head_dim] f32 into slots[n] (slot = block * block_tokens +
  // offset), converting to kv.type.
  virtual void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n,
                        const int32_t* slots) = 0;
  // out[rows of q, num_heads, head_dim] = softmax(q k^T * scale, causal) v, grouped-query
  // (num_heads a multiple of kv.num_kv_heads), numerically stable (online softmax).
  virtual void attention(const float* q, int num_heads, const PagedKv& kv,
                         std::span<const SeqAttention> seqs, float scale, float* out) = 0;
  // out[n, dim] = silu(gate) * up
  virtual void swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) = 0;
  // y[i] += x[i]
  virtual void add(float* y, const float* x, int64_t count) = 0;
  // Router: logits [n, num_experts] -> ids [n, k], weights [n, k]. softmax over all experts,
  // then top-k; if renormalize, the k weights are divided by their sum.
  virtual void topk_softmax(const float* logits, int64_t n, int num_experts, int k,
                            bool renormalize, int32_t* ids, float* weights) = 0;
  // out[n, dim] = sum_s weights[t, s] * x[t, s, :]
  virtual void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                            float* out) = 0;
  // y_i[n, ws[i].rows] = x[n, cols] . ws[i]^T for each i: several products of one input
  // (q/k/v, gate/up), which a backend may run as one launch. Same result as matmul per i.
  virtual void matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n,
                            std::span<float* const> ys) {
    for (size_t i = 0; i < ws.size(); ++i) matmul(ws[i], x, n, ys[i]);
  }
  // Host memory for what every step reads back (logits): page-locked on CUDA, so that copies
  // run at the bus's speed. Release with free_host.
  virtual float* alloc_host_f32(size_t count) { return new float[count]; }
  virtual void free_host(float* p) { delete[] p; }
  // out[r] (host) = the index of the first largest value of row r of x [rows, cols] (NaN never
  // wins; all NaN: 0), as the sampler's greedy choice: a backend that holds x elsewhere copies
  // back 4 bytes a row instead of the row.
  virtual void argmax_rows(const float* x, int64_t rows, int64_t cols, int32_t* out) {
    for (int64_t r = 0; r < rows; ++r)
      out[r] = first_argmax(std::span<const float>(x + r * cols, static_cast<size_t>(cols)));
  }
  // Wait for queued work (no-op on the CPU).
  virtual void synchronize() = 0;

  // Step graphs (optional; the CPU ignores them). A caller that repeats one sequence of ops
  // step after step (decode) brackets each step with begin_step/end_step. Two steps with the
  // same `key` promise the same ops in the same order on the same buffers and sizes; only the
  // contents of host index arrays (ids, positions, slots, block tables) and the sequences'
  // kv_len (at most max_kv_len) may differ. A backend may then record the ops once and replay
  // them (CUDA graphs), with the host arrays copied to the device in one copy per step.
  struct StepInfo {
    uint64_t key = 0;
    int64_t num_tokens = 0;
    int64_t max_kv_len = 0;
    // Every sequence of the step brings one token (a decode step): a backend may then treat
    // the step's tokens as batch-1 decode treats its one (CUDA: int8 activations).
    bool decode_only = false;
  };
  virtual void begin_step(const StepInfo& step) { (void)step; }
  virtual void end_step() {}

  // --- Hybrid models (Gated DeltaNet). A backend that implements these says so here; models
  // that need them refuse to load on one that does not.
  virtual bool supports_delta_net() const { return false; }
  // Causal depthwise conv + SiLU over each segment: with xs = [conv state (kernel-1 rows);
  // x rows], out[t, c] = silu(sum_j weight[c, j] * xs[t + j, c]). x, out [n, channels];
  // weight [channels, kernel] f32; state [kernel-1, channels]: the last kernel-1 input rows.
  virtual void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
                        std::span<const RecurrentSeg> segs, float* out);
  // The gated delta rule (Yang et al., "Gated Delta Networks", eq. 10), per value head h with
  // state S [head_k_dim, head_v_dim]: q, k L2-normalised (eps 1e-6), q scaled by
  // 1/sqrt(head_k_dim); g = a[h] * softplus(alpha + dt_bias[h]), b = sigmoid(beta);
  //   S <- exp(g) S;  S <- S + k (b (v - S^T k))^T;  out = S^T q.
  // qkv [n, 2*hk*dk + hv*dv] (q heads, k heads, v heads of each row); alpha, beta [n, hv];
  // dt_bias, a [hv]; out [n, hv, dv]; state [hv, dk, dv] f32.
  virtual void gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                                const float* dt_bias, const float* a, const DeltaNetShape& shape,
                                std::span<const RecurrentSeg> segs, float* out);
  // x[t, i] *= sigmoid(gate[t * gate_dim + (gate_dim == 1 ? 0 : i)]) for x [n, dim]; gate_dim
  // is dim (an element-wise gate) or 1 (one gate per row).
  virtual void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim);
};

// Defaults for backends without the hybrid ops: never reached, because models check
// supports_delta_net() before they bind.
inline void Backend::ssm_conv(const float*, int64_t, const float*, int, std::span<const RecurrentSeg>, float*) {
  STRATA_CHECK_MSG(false, "ssm_conv is not implemented by this backend");
}
inline void Backend::gated_delta_rule(const float*, const float*, const float*, const float*, const float*,
                                      const DeltaNetShape&, std::span<const RecurrentSeg>, float*) {
  STRATA_CHECK_MSG(false, "gated_delta_rule is not implemented by this backend");
}
inline void Backend::sigmoid_mul(float*, const float*, int64_t, int64_t, int64_t) {
  STRATA_CHECK_MSG(false, "sigmoid_mul is not implemented by this backend");
}

}  // namespace strata::backend
