// CudaBackend's ops: each picks its kernel (matrix-vector kernels for decode, cuBLAS on
// dequantized bf16 weights for prefill), stages host arrays, and holds back the ops that a
// later one completes (residual add + RMSNorm + quantize, the per-head chain, gate + up).
#include "backend/cuda/cuda_backend_impl.h"

namespace strata::backend::cuda {

void CudaBackend::matmul(const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_multi({&w, 1}, x, n, {&y, 1});
}

void CudaBackend::matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n,
                               std::span<float* const> ys) {
  impl_->prof_mark("matmul");
  STRATA_CHECK(ws.size() == ys.size() && !ws.empty());
  if (n == 0) return;
  cudaStream_t s = impl_->stream;
  // Int8 products: one token, or 2-16 tokens of a decode step (continuous batching: one
  // token of each sequence, which batch-1 decode would also take with int8 activations; each
  // product decodes its weights once for up to 8 tokens). One int8 copy of x for all the
  // products (and for those after, until x changes). Prompt tokens keep the float products:
  // int8 activations on them flip near-tie expert choices of MoE models (golden
  // qwen3moe_q4_k_m: rms 9% against 1%, run 45; the multi-token kernel itself gives what the
  // one-token kernel gives token by token).
  static const bool q8n_on = [] {  // STRATA_CUDA_Q8N=0: the float kernel / cuBLAS (benches)
    const char* v = std::getenv("STRATA_CUDA_Q8N");
    return v == nullptr || std::atoi(v) != 0;
  }();
  const bool tokens = q8n_on && impl_->step_decode_only && n >= 2 && n <= kQ8MaxTokens;
  bool q8 = (n == 1 && ws.size() <= kMaxGemvSegments) || tokens;
  for (const WeightView& w : ws)
    q8 = q8 && gemv_q8_supported(w.type) && w.cols % 32 == 0 && w.cols == ws[0].cols;
  if (q8) {
    impl_->enter(true);
    if (impl_->replay()) return;
    const Q8Buf b = impl_->q8_get(x, n * ws[0].cols);
    if (n == 1) {
      gemv_q8_multi(ws.data(), ys.data(), static_cast<int>(ws.size()), b, s);
    } else {
      for (size_t i = 0; i < ws.size(); ++i) gemv_q8_tokens(ws[i], b, n, ys[i], s);
    }
    for (size_t i = 0; i < ws.size(); ++i)
      impl_->invalidate_if_written(ys[i], static_cast<size_t>(n * ws[i].rows) * 4);
    return;
  }
  // One token's product with a one-row F32 weight (the shared expert's gate): held for the
  // sigmoid_mul that reads it, which holds it on into the residual's kernel.
  if (n == 1 && ws.size() == 1 && ws[0].type == DType::kF32 && ws[0].rows == 1 &&
      ws[0].row_bytes == static_cast<size_t>(ws[0].cols) * 4 && residual_norm_supported(ws[0].cols)) {
    impl_->enter(true);
    impl_->invalidate_if_written(ys[0], 4);
    if (impl_->replay()) return;
    impl_->pending_dot = {ws[0], x, ys[0]};
    return;
  }
  // Keeps the int8 copy of x (a float router before int8 expert products) unless a product
  // writes over it.
  impl_->enter(true);
  for (size_t i = 0; i < ws.size(); ++i)
    impl_->invalidate_if_written(ys[i], static_cast<size_t>(n * ws[i].rows) * 4);
  if (impl_->replay()) return;
  for (size_t i = 0; i < ws.size(); ++i) matmul_one(ws[i], x, n, ys[i]);
}

void CudaBackend::matmul_one(const WeightView& w, const float* x, int64_t n, float* y) {
  cudaStream_t s = impl_->stream;
  if (n <= kGemvMaxTokens) {
    gemv(w, x, n, y, s);
    return;
  }
  // y^T [rows, n] = W [rows, cols] . x^T [cols, n]; column-major: op(A) = A^T with A the
  // [cols, rows] column-major view of W.
  const float one = 1.0f, zero = 0.0f;
  const int m = static_cast<int>(w.rows), nn = static_cast<int>(n), k = static_cast<int>(w.cols);
  if (w.type == DType::kF32 && w.row_bytes == static_cast<size_t>(w.cols) * 4) {
    STRATA_CUBLAS_CHECK(cublasSgemm(impl_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one,
                                    static_cast<const float*>(w.data), k, x, k, &zero, y, m));
    return;
  }
  auto* wb =
      static_cast<__nv_bfloat16*>(impl_->w_bf16.get(static_cast<size_t>(w.rows * w.cols) * 2));
  auto* xb = static_cast<__nv_bfloat16*>(impl_->x_bf16.get(static_cast<size_t>(n * w.cols) * 2));
  dequantize_bf16(w, wb, s);
  f32_to_bf16(x, static_cast<size_t>(n * w.cols), xb, s);
  STRATA_CUBLAS_CHECK(cublasGemmEx(impl_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one, wb,
                                   CUDA_R_16BF, k, xb, CUDA_R_16BF, k, &zero, y, CUDA_R_32F, m,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::matmul_experts(const WeightView& w, const float* x, bool x_per_slot,
                                 const int32_t* ids, int64_t n, int k, float* y) {
  impl_->prof_mark("matmul_experts");
  Impl& m = *impl_;
  if (n == 1 && gemv_q8_supported(w.type) && w.cols % 32 == 0) {
    experts_q8(w, nullptr, x, x_per_slot, ids, k, y);
    return;
  }
  m.enter();
  if (n == 0) return;
  // Prefill: grouped by expert through cuBLAS (bf16 operands, like the dense prefill products).
  if (!m.graph_layout() && n > kGraphMaxTokens && w.type != DType::kF32 && w.num_experts > 1) {
    m.experts_grouped(w, x, x_per_slot, ids, n, k, y);
    return;
  }
  const int32_t* d_ids = impl_->stage_i32(ids, static_cast<size_t>(n * k));
  if (impl_->replay()) return;
  gemv_experts(w, x, x_per_slot, d_ids, n, k, y, impl_->stream);
}

void CudaBackend::matmul_experts_shared(const WeightView& w, const WeightView& shared,
                                        const float* x, bool x_per_slot, const int32_t* ids,
                                        int k, float* y) {
  impl_->prof_mark("matmul_experts");
  if (gemv_q8_supported(w.type) && gemv_q8_supported(shared.type) && w.cols % 32 == 0 &&
      shared.cols == w.cols && shared.rows == w.rows) {
    experts_q8(w, &shared, x, x_per_slot, ids, k, y);
    return;
  }
  Backend::matmul_experts_shared(w, shared, x, x_per_slot, ids, k, y);
}

// One token's expert products on int8 activations (and the shared expert as slot k): x (one
// row, or one a slot with x_per_slot) quantized once; the product of the same x and ids after
// a held-back one (up after gate) joins its launch.
void CudaBackend::experts_q8(const WeightView& w, const WeightView* shared, const float* x,
                             bool x_per_slot, const int32_t* ids, int k, float* y) {
  Impl& m = *impl_;
  const int spt = shared != nullptr ? k + 1 : k;  // slots
  const Impl::PendingExperts held = m.pending_exp;
  const bool join = !x_per_slot && held.y != nullptr && held.x == x && held.ids == ids &&
                    held.k == k && held.w.cols == w.cols && held.has_shared == (shared != nullptr);
  if (join) m.pending_exp = {};
  m.enter(true);
  const int32_t* d_ids = m.stage_i32(ids, static_cast<size_t>(k));
  if (m.replay()) return;
  const Q8Buf b = m.q8_get(x, (x_per_slot ? spt : 1) * w.cols);
  if (join) {
    const WeightView ws[2] = {held.w, w};
    const WeightView shs[2] = {held.sh, shared != nullptr ? *shared : WeightView{}};
    float* const ys[2] = {held.y, y};
    gemv_q8_experts(ws, ys, 2, b, false, d_ids, 1, k, m.stream, shared != nullptr ? shs : nullptr);
    m.invalidate_if_written(held.y, static_cast<size_t>(spt * held.w.rows) * 4);
  } else if (!x_per_slot) {
    m.pending_exp = {w, x, ids, d_ids, 1, k, y, b, shared != nullptr ? *shared : WeightView{}, shared != nullptr};
    return;  // launched by the next op (joined if it is the matching up product)
  } else {
    gemv_q8_experts(&w, &y, 1, b, true, d_ids, 1, k, m.stream, shared);
  }
  m.invalidate_if_written(y, static_cast<size_t>(spt * w.rows) * 4);
}

void CudaBackend::rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                           float* out) {
  impl_->prof_mark("rms_norm");
  Impl& m = *impl_;
  // One token of a supported dim: the held residual (all its terms) and the norm in one kernel.
  const bool row = n == 1 && residual_norm_supported(dim);
  // The residual add held back by add() runs inside the norm when it adds into x.
  const bool fuse_add = m.pending.y == x && m.pending.count == n * dim &&
                        (m.pending.row ? row : m.pending.gate == nullptr);
  const Impl::PendingAdd add = m.pending;
  if (fuse_add) m.pending = {};
  // A per-head norm in place (qwen3 q_norm, k_norm): held for the head chain.
  if (!fuse_add && out == x && n > 1 && dim % 32 == 0 && dim <= kHeadChainMaxDim) {
    m.flush_others();
    if (!m.chain_can_append(x, n, static_cast<int>(dim))) m.flush_chain();
    m.invalidate();
    if (m.replay()) return;
    m.chain.dim = static_cast<int>(dim);
    m.chain.op[m.chain.count++] = {out, weight, eps, n, 0, nullptr};
    return;
  }
  m.enter();
  if (m.replay() || n == 0) return;
  if (row) {
    ResidualTerms t;
    if (fuse_add && add.row) t = add.terms;
    else if (fuse_add) t.plain = add.x;
    const Q8Buf b = m.q8_claim(out, dim);
    residual_norm(fuse_add ? add.y : const_cast<float*>(x), t, weight, dim, eps, out, &b, m.stream);
    return;
  }
  // One token whose norm feeds the int8 products: quantize it in the same kernel.
  const bool q8 = n == 1 && dim % 32 == 0;
  Q8Buf b{};
  if (q8) b = m.q8_claim(out, dim);
  rms_norm_fused(fuse_add ? add.y : nullptr, fuse_add ? add.x : nullptr, x, weight, n, dim, eps,
                 out, q8 ? &b : nullptr, m.stream);
}

void CudaBackend::rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
                       const RopeTable& table) {
  impl_->prof_mark("rope");
  // The head chain (see rms_norm) keeps what it holds; anything else held is launched.
  const bool chain = head_dim % 32 == 0 && head_dim <= kHeadChainMaxDim;
  if (chain) {
    impl_->flush_others();
    impl_->invalidate();
  } else {
    impl_->enter();
  }
  STRATA_CHECK(table.n_rot <= head_dim && table.n_rot % 2 == 0);
  RopeArgs a{};
  a.half = table.n_rot / 2;
  STRATA_CHECK(a.half <= RopeArgs::kMaxPairs && static_cast<int>(table.freqs.size()) >= a.half);
  a.mode_neox = table.mode == RopeTable::Mode::kNeox ? 1 : 0;
  a.mscale = table.mscale;
  std::copy(table.freqs.begin(), table.freqs.begin() + a.half, a.freqs);
  if (n == 0) return;
  Impl& m = *impl_;
  if (head_dim % 32 == 0 && head_dim <= kHeadChainMaxDim) {
    // Joins the head chain: onto the held norm of this x, else as an op of its own.
    const int64_t rows = n * num_heads;
    int idx = -1;
    for (int i = 0; i < m.chain.count; ++i) {
      const HeadRowOp& o = m.chain.op[i];
      if (o.x == x && o.rows == rows && o.pos == nullptr && m.chain.dim == head_dim) idx = i;
    }
    if (idx < 0 && !m.chain_can_append(x, rows, head_dim)) m.flush_chain();
    const int32_t* d_pos = m.stage_i32(positions, static_cast<size_t>(n));
    if (m.replay()) return;
    if (idx < 0) {
      idx = m.chain.count++;
      m.chain.dim = head_dim;
      m.chain.op[idx] = {x, nullptr, 0.0f, rows, num_heads, nullptr};
    }
    m.chain.op[idx].heads = num_heads;
    m.chain.op[idx].pos = d_pos;
    m.chain.rope[idx] = a;
    return;
  }
  const int32_t* d_pos = impl_->stage_i32(positions, static_cast<size_t>(n));
  if (impl_->replay()) return;
  cuda::rope(x, n, num_heads, head_dim, d_pos, a, impl_->stream);
}

void CudaBackend::kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n,
                           const int32_t* slots) {
  impl_->prof_mark("kv_store");
  Impl& m = *impl_;
  // The end of a held head chain whose last op wrote k: one launch for all of it.
  int idx = -1;
  for (int i = 0; i < m.chain.count; ++i) {
    const HeadRowOp& o = m.chain.op[i];
    if (o.x == k && o.rows == n * kv.num_kv_heads && m.chain.dim == kv.head_dim) idx = i;
  }
  if (idx >= 0 && n > 0 && !m.chain_overlaps(v, n * kv.num_kv_heads * kv.head_dim)) {
    m.flush_others();
    const int32_t* d_slots = m.stage_i32(slots, static_cast<size_t>(n));
    if (m.replay()) return;
    HeadChainArgs& c = m.chain;
    if (idx != c.count - 1) {  // K goes last (the kernel stores from op[count - 1])
      std::swap(c.op[0], c.op[1]);
      std::swap(c.rope[0], c.rope[1]);
    }
    c.store = true;
    c.kv = kv;
    c.v = v;
    c.slots = d_slots;
    c.row_bytes = row_bytes(kv.type, kv.head_dim);
    m.flush_chain();
    return;
  }
  m.enter();
  if (n == 0) return;
  const int32_t* d_slots = impl_->stage_i32(slots, static_cast<size_t>(n));
  if (impl_->replay()) return;
  cuda::kv_store(kv, k, v, n, d_slots, impl_->stream);
}

void CudaBackend::attention(const float* q, int num_heads, const PagedKv& kv,
                            std::span<const SeqAttention> seqs, float scale, float* out) {
  impl_->prof_mark("attention");
  Impl& m = *impl_;
  m.enter();
  // Pack [seqs][row_seq][tables][tiles] into one host buffer, then one copy to the device.
  // In a step graph each table takes kv_cap keys' worth of entries, and the kernels are sized
  // for kv_cap keys (each sequence's own kv_len is read on the device).
  int64_t rows = 0, max_keys = 0, table_len = 0, max_q = 0, num_tiles = 0;
  const int tile_rows = attention_tile_rows(kv, num_heads);
  const int64_t cap_blocks = (m.kv_cap + kv.block_tokens - 1) / kv.block_tokens;
  for (const SeqAttention& sq : seqs) {
    rows = std::max(rows, sq.q_begin + sq.q_count);
    max_keys = std::max(max_keys, sq.kv_len);
    max_q = std::max(max_q, sq.q_count);
    const int64_t blocks = (sq.kv_len + kv.block_tokens - 1) / kv.block_tokens;
    if (m.graph_layout()) STRATA_CHECK_MSG(blocks <= cap_blocks, "step's kv_len over max_kv_len");
    table_len += m.graph_layout() ? cap_blocks : blocks;
    num_tiles += (sq.q_count + tile_rows - 1) / tile_rows;
  }
  if (rows == 0) return;
  if (m.graph_layout()) max_keys = m.kv_cap;
  const bool tiled = attention_uses_tiles(kv, num_heads, max_q);
  if (!tiled) num_tiles = 0;
  const size_t seq_bytes = seqs.size() * sizeof(AttnSeq);
  const size_t rows_bytes = static_cast<size_t>(rows) * 4;
  const size_t tables_bytes = static_cast<size_t>(table_len) * 4;
  const size_t tiles_off = (seq_bytes + rows_bytes + tables_bytes + 7) & ~size_t{7};
  std::vector<uint8_t>& host = m.attn_host;
  host.assign(tiles_off + static_cast<size_t>(num_tiles) * sizeof(int2), 0);
  auto* h_seqs = reinterpret_cast<AttnSeq*>(host.data());
  auto* h_rows = reinterpret_cast<int32_t*>(host.data() + seq_bytes);
  auto* h_tables = reinterpret_cast<int32_t*>(host.data() + seq_bytes + rows_bytes);
  auto* h_tiles = reinterpret_cast<int2*>(host.data() + tiles_off);
  std::fill(h_rows, h_rows + rows, -1);
  int64_t off = 0, t = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SeqAttention& sq = seqs[i];
    const int64_t blocks = (sq.kv_len + kv.block_tokens - 1) / kv.block_tokens;
    h_seqs[i] = {sq.q_begin, sq.q_count, sq.kv_len, off};
    if (blocks > 0) std::memcpy(h_tables + off, sq.block_table, static_cast<size_t>(blocks) * 4);
    off += m.graph_layout() ? cap_blocks : blocks;
    for (int64_t r = sq.q_begin; r < sq.q_begin + sq.q_count; ++r)
      h_rows[r] = static_cast<int32_t>(i);
    if (tiled) {
      for (int64_t r = 0; r < sq.q_count; r += tile_rows)
        h_tiles[t++] = {static_cast<int>(i), static_cast<int>(sq.q_begin + r)};
    }
  }
  const auto* dev = static_cast<const uint8_t*>(m.stage(host.data(), host.size()));
  if (m.replay()) return;
  AttnArgs a{};
  a.q = q;
  a.num_heads = num_heads;
  a.num_rows = rows;
  a.seqs = reinterpret_cast<const AttnSeq*>(dev);
  a.row_seq = reinterpret_cast<const int32_t*>(dev + seq_bytes);
  a.tables = reinterpret_cast<const int32_t*>(dev + seq_bytes + rows_bytes);
  a.scale = scale;
  a.max_keys = max_keys;
  a.out = out;
  a.tiles = reinterpret_cast<const int2*>(dev + tiles_off);
  a.num_tiles = num_tiles;
  if (tiled) {
    attention_prefill(kv, a, m.stream);
    return;
  }
  a.partial_floats = attention_partial_floats(kv, a);
  a.partial =
      a.partial_floats > 0 ? static_cast<float*>(m.partial.get(a.partial_floats * 4)) : nullptr;
  // One token: the merge writes the int8 copy the output projection reads.
  const int64_t cols = static_cast<int64_t>(num_heads) * kv.head_dim;
  if (rows == 1 && kv.head_dim % 32 == 0 && a.partial != nullptr) a.q8 = m.q8_claim(out, cols);
  if (!cuda::attention(kv, a, m.stream)) m.invalidate_if_written(out, static_cast<size_t>(rows * cols) * 4);
}

void CudaBackend::swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) {
  impl_->prof_mark("swiglu");
  Impl& m = *impl_;
  const bool q8 = (n == 1 || n * dim <= kSwigluQ8MaxElems) && dim % 32 == 0;
  // A held per-head RMSNorm of up (the Gated DeltaNet output before its gate): one kernel.
  const HeadRowOp& c0 = m.chain.op[0];
  if (q8 && m.chain.count == 1 && !m.chain.store && c0.x == up && c0.norm_w != nullptr &&
      c0.pos == nullptr && c0.rows * m.chain.dim == n * dim) {
    const HeadRowOp op = c0;
    const int hd = m.chain.dim;
    m.chain.count = 0;
    m.enter(true);
    m.invalidate_if_written(out, static_cast<size_t>(n * dim) * 4);
    if (m.replay()) return;
    const Q8Buf b = m.q8_claim(out, n * dim);
    gated_norm_q8(up, op.norm_w, gate, op.rows, hd, op.eps, out, b, m.stream);
    return;
  }
  // Keeps the int8 copies of other activations (the norm's, read again by the shared expert).
  m.enter(true);
  m.invalidate_if_written(out, static_cast<size_t>(n * dim) * 4);
  if (m.replay()) return;
  // One token (the input of ffn_down), or one token's k expert slots (the input of the
  // experts' down): quantize for the int8 product in the same kernel.
  if (q8) {
    const Q8Buf b = m.q8_claim(out, n * dim);
    swiglu_q8(gate, up, n * dim, out, b, m.stream);
    return;
  }
  cuda::swiglu(gate, up, n * dim, out, m.stream);
}

void CudaBackend::add(float* y, const float* x, int64_t count) {
  Impl& m = *impl_;
  m.prof_mark("add");
  // The add of a held gated x: one kernel for both.
  const Impl::PendingGate g = m.pending_gate;
  const Impl::PendingWsum ws = m.pending_wsum;
  const bool gated = g.x == x && g.n * g.dim == count;
  const bool wsum = ws.out == x && ws.dim == count;
  if (gated) m.pending_gate = {};
  if (wsum) m.pending_wsum = {};
  // Decode: a term of one token's residual (the gated shared expert, the experts' weighted
  // sum) joins the residual of y held for its next RMSNorm, in issue order, when nothing else
  // is held; else the held ops launch and the term starts a residual.
  if (residual_norm_supported(count) && (wsum || (gated && g.n == 1))) {
    ResidualTerms t;
    const bool join = m.pending.y == y && m.pending.row && m.pending.count == count &&
                      !m.holds_others() && m.pending.terms.k == 0 && (wsum || m.pending.terms.gated == nullptr);
    if (join) {
      t = m.pending.terms;
      m.flush_chain();
      m.invalidate();
    } else {
      m.enter();
    }
    if (gated) {
      t.gated = g.x;
      if (g.dot.y != nullptr) {
        t.gate_w = static_cast<const float*>(g.dot.wv.data);
        t.gate_x = g.dot.x;
        t.gate_out = g.dot.y;
      } else {
        t.gate = g.gate;
      }
    } else {
      t.fo = ws.fo;
      t.fw = ws.w;
      t.k = ws.k;
      t.fo_out = ws.out;
    }
    m.pending = {y, nullptr, count, nullptr, 0, true, t};
    return;
  }
  m.enter();
  if (gated) m.launch_dot(g.dot);
  if (wsum && !m.replay()) cuda::weighted_sum(ws.fo, ws.w, 1, ws.k, ws.dim, ws.out, m.stream);
  if (count == 0) return;
  // Launched by the next op (fused if it is y's RMSNorm and the add is not gated).
  m.pending = {y, const_cast<float*>(x), count, gated ? g.gate : nullptr, gated ? g.dim : 0};
}

void CudaBackend::topk_softmax(const float* logits, int64_t n, int num_experts, int k,
                               bool renormalize, int32_t* ids, float* weights) {
  impl_->prof_mark("topk_softmax");
  // Keeps the int8 copy of the router's input (the experts' x) unless it writes over it.
  impl_->enter(true);
  impl_->invalidate_if_written(ids, static_cast<size_t>(n * k) * 4);
  impl_->invalidate_if_written(weights, static_cast<size_t>(n * k) * 4);
  if (impl_->replay()) return;
  cuda::topk_softmax(logits, n, num_experts, k, renormalize, ids, weights, impl_->stream);
}

void CudaBackend::weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                               float* out) {
  impl_->prof_mark("weighted_sum");
  Impl& m = *impl_;
  // One token: held for the add of out into the held residual (the residual stays held when
  // nothing else is; it reads out's old contents first, as it was issued first).
  if (n == 1 && residual_norm_supported(dim)) {
    if (m.holds_others()) m.enter();
    m.invalidate();
    if (m.replay()) return;
    m.pending_wsum = {x, weights, k, dim, out};
    return;
  }
  impl_->enter();
  if (impl_->replay()) return;
  cuda::weighted_sum(x, weights, n, k, dim, out, impl_->stream);
}

void CudaBackend::ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
                           std::span<const RecurrentSeg> segs, float* out) {
  impl_->prof_mark("ssm_conv");
  Impl& m = *impl_;
  m.enter();
  if (segs.empty() && !m.graph_layout()) return;
  const DnPlan plan = m.stage_segments(segs);
  if (m.replay()) return;
  cuda::ssm_conv(x, channels, weight, kernel, plan, out, m.stream);
}

void CudaBackend::gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                                   const float* dt_bias, const float* a,
                                   const DeltaNetShape& shape, std::span<const RecurrentSeg> segs,
                                   float* out) {
  impl_->prof_mark("gated_delta_rule");
  Impl& m = *impl_;
  m.enter();
  if (segs.empty() && !m.graph_layout()) return;
  const DnPlan plan = m.stage_segments(segs);
  if (m.replay()) return;
  const size_t scratch = gated_delta_rule_scratch_floats(shape, plan);
  float* prep = scratch > 0 ? static_cast<float*>(m.dn_prep.get(scratch * 4)) : nullptr;
  cuda::gated_delta_rule(qkv, alpha, beta, dt_bias, a, shape, plan, prep, out, m.stream);
}

void CudaBackend::sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim,
                              int64_t gate_dim) {
  impl_->prof_mark("sigmoid_mul");
  Impl& m = *impl_;
  // The held product that computed a one-token gate stays held with the gate.
  const Impl::PendingDot dot = m.pending_dot;
  const bool with_dot = gate_dim == 1 && n == 1 && dot.y == gate;
  if (with_dot) m.pending_dot = {};
  // Keeps the int8 copy of the FFN input (the router and experts read it next).
  impl_->enter(true);
  impl_->invalidate_if_written(x, static_cast<size_t>(n * dim) * 4);
  if (gate_dim == 1 && n * dim > 0) {  // held: joins the add of x that usually follows
    impl_->pending_gate = {x, gate, n, dim, with_dot ? dot : Impl::PendingDot{}};
    return;
  }
  if (with_dot) m.launch_dot(dot);
  if (impl_->replay()) return;
  // One token's elementwise gate (the gated attention output, read next by the output
  // projection): its int8 copy in the same kernel.
  if (n == 1 && gate_dim == dim && dim % 32 == 0) {
    const Q8Buf b = m.q8_claim(x, dim);
    sigmoid_mul_q8(x, gate, dim, b, impl_->stream);
    return;
  }
  cuda::sigmoid_mul(x, gate, n, dim, gate_dim, impl_->stream);
}

}  // namespace strata::backend::cuda
