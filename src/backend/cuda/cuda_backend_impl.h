// CudaBackend's private state (CudaBackend::Impl), shared by its two source files:
// cuda_backend.cpp (device memory, weights, staging, step graphs) and cuda_backend_ops.cpp
// (the ops: the choice between the matrix-vector kernels and cuBLAS, fusions held back until
// the op that completes them). Include only from those two.
#pragma once

#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cuda/kernels.h"
#include "core/check.h"
#include "core/fp16.h"
#include "core/quant.h"

namespace strata::backend::cuda {
namespace impl_detail {

inline void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  std::fprintf(stderr, "%s:%d: cuBLAS error %d in %s\n", file, line, static_cast<int>(s), what);
  std::abort();
}
#define STRATA_CUBLAS_CHECK(x) check_cublas((x), #x, __FILE__, __LINE__)

// A device buffer that only grows. A grown-out buffer is kept (retired) until the backend
// goes: recorded step graphs may still point into it, and freeing would synchronize.
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  std::vector<void*> retired;
  void* get(size_t want) {
    if (want > bytes) {
      if (p != nullptr) retired.push_back(p);
      bytes = std::max(want, bytes * 2);
      STRATA_CUDA_CHECK(cudaMalloc(&p, bytes));
    }
    return p;
  }
  void release() {
    if (p != nullptr) cudaFree(p);
    for (void* r : retired) cudaFree(r);
    retired.clear();
    p = nullptr;
    bytes = 0;
  }
};

constexpr size_t kCublasWorkspace = size_t{32} << 20;
// Steps of more tokens than this run eagerly (prefill: few launches, each long).
constexpr int64_t kGraphMaxTokens = 64;
// SwiGLU of up to this many elements writes the int8 copy of its output (decode: one token's
// ffn, or its k expert slots).
constexpr int64_t kSwigluQ8MaxElems = int64_t{1} << 15;
// Step graphs kept at once; more distinct keys than this clear the cache.
constexpr size_t kMaxGraphs = 64;

inline uint64_t mix_key(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

inline bool is_device_pointer(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

}  // namespace impl_detail
using namespace impl_detail;

struct CudaBackend::Impl {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  std::vector<void*> weights;  // uploaded weight copies, freed with the backend
  // Host index arrays go through a pinned ring and a device ring of the same size: copies
  // from pinned memory are truly asynchronous (from pageable memory each copy would wait
  // for the stream), and one stream orders each copy before its kernel and after the kernels
  // that read that part of the ring last time round; wrapping around waits for the stream.
  uint8_t* ring_host = nullptr;
  uint8_t* ring_dev = nullptr;
  size_t ring_bytes = 0, ring_off = 0;
  Scratch w_bf16, x_bf16;  // prefill: dequantized weight, converted activations
  Scratch partial;         // split-K attention partials
  Scratch cublas_ws;       // cuBLAS workspace
  Scratch moe_y;           // MoE prefill: the grouped products' outputs
  Scratch dn_prep;         // DeltaNet prefill: normalised q, k and gates of every row
  Scratch argmax_keys;     // argmax_rows: a key a row
  unsigned long long* argmax_host = nullptr;  // pinned, argmax_cap keys
  size_t argmax_cap = 0;
  std::vector<uint8_t> attn_host;  // attention's packed host arrays
  std::vector<uint8_t> dn_host;    // the DeltaNet ops' packed segments (DnPlan)
  // Int8 copies of batch-1 activations (q/k/v and gate/up share one x), kept for the two
  // sources used last: a copy is valid until an op writes over its source, or any op that does
  // not keep them runs (enter()). RMSNorm and SwiGLU of one token write the copy of their
  // output as they write it (fused quantization). Two, so that the routed experts and the
  // shared expert of a MoE layer both find the norm's copy after the other's SwiGLU.
  struct Q8Slot {
    const float* src = nullptr;
    int64_t cols = 0;
    uint64_t used = 0;
    Scratch buf;  // [xq: cols int8][xd: cols/32 f32][xs: cols/16 int32]
  };
  Q8Slot q8s[2];
  uint64_t q8_clock = 0;
  static Q8Buf q8_view(Scratch& sc, int64_t cols) {
    auto* base = static_cast<uint8_t*>(sc.get(static_cast<size_t>(cols) * 2 + 64));
    return {reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(base + cols),
            reinterpret_cast<int32_t*>(base + cols + cols / 8)};
  }
  // The held copy of x [cols], if any (then marked used).
  bool q8_find(const float* x, int64_t cols, Q8Buf* out) {
    for (Q8Slot& q : q8s) {
      if (q.src == x && q.cols == cols) {
        q.used = ++q8_clock;
        *out = q8_view(q.buf, cols);
        return true;
      }
    }
    return false;
  }
  // Where the copy of x [cols] is to be written: its slot, else the least recently used one.
  Q8Buf q8_claim(const float* x, int64_t cols) {
    Q8Slot* q = &q8s[0];
    for (Q8Slot& c : q8s) {
      if (c.src == x) {
        q = &c;
        break;
      }
      if (c.used < q->used) q = &c;
    }
    q->src = x;
    q->cols = cols;
    q->used = ++q8_clock;
    return q8_view(q->buf, cols);
  }
  // The held copy of x [cols], else a slot's, quantized now on the step's stream.
  Q8Buf q8_get(const float* x, int64_t cols) {
    Q8Buf b;
    if (!q8_find(x, cols, &b)) {
      b = q8_claim(x, cols);
      quantize_act_q8(x, cols, b.xq, b.xd, b.xs, stream);
    }
    return b;
  }
  void invalidate() {
    for (Q8Slot& q : q8s) q.src = nullptr;
  }
  // Forget the int8 copies whose source overlaps [p, p + bytes) (an op wrote over it).
  void invalidate_if_written(const void* p, size_t bytes) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (Q8Slot& q : q8s) {
      const auto* src = reinterpret_cast<const uint8_t*>(q.src);
      if (q.src != nullptr && b < src + q.cols * 4 && src < b + bytes) q.src = nullptr;
    }
  }
  // An add (y += x) held back so that the next op, when it is the RMSNorm of y, runs fused
  // with it (the residual add before each norm); any other op launches it first.
  // A gated add (from a held sigmoid_mul of x by one gate a row, then y += x) launches as one
  // kernel that also writes the gated x, and does not fuse into the norm.
  // Decode (one row): the add carries every term of the layer's residual (ResidualTerms: the
  // shared expert's gated output with its gate's dot, the routed experts' weighted sum) and
  // runs inside the next RMSNorm of y as one kernel (decode_fused.cu).
  struct PendingAdd {
    float* y = nullptr;
    float* x = nullptr;
    int64_t count = 0;
    const float* gate = nullptr;  // set: x[i] *= sigmoid(gate[i / gate_every]) first
    int64_t gate_every = 0;
    bool row = false;  // one row of a supported dim: terms below, x and gate unused
    ResidualTerms terms;
  } pending;
  // A one-row F32 product of one token (the shared expert's gate, [dim] . x) held for the
  // sigmoid_mul that reads it; any other op launches it first.
  struct PendingDot {
    WeightView wv;
    const float* x = nullptr;
    float* y = nullptr;
  } pending_dot;
  // A weighted sum of one token's expert outputs held for the add of its output into the
  // held residual; any other op launches it first.
  struct PendingWsum {
    const float* fo = nullptr;
    const float* w = nullptr;
    int k = 0;
    int64_t dim = 0;
    float* out = nullptr;
  } pending_wsum;
  // A sigmoid_mul with one gate a row (the shared expert's gate) held back so that the add of
  // its x that follows runs in the same kernel; any other op launches it first.
  struct PendingGate {
    float* x = nullptr;
    const float* gate = nullptr;
    int64_t n = 0, dim = 0;
    PendingDot dot;  // the gate's held product (one token), if it was held
  } pending_gate;
  // An int8 expert product (gate) held back so that the next op, when it is the product of
  // the same x and ids (up), runs in the same launch; any other op launches it first. Its x
  // is in act_q8 (already quantized when it was held).
  struct PendingExperts {
    WeightView w;
    const float* x = nullptr;
    const int32_t* ids = nullptr;    // as the caller passed them
    const int32_t* d_ids = nullptr;  // device view
    int64_t n = 0;
    int k = 0;
    float* y = nullptr;
    Q8Buf xb{};  // x's int8 copy
    WeightView sh;  // the shared expert (slot k), if has_shared
    bool has_shared = false;
  } pending_exp;
  // Per-head ops (q/k RMSNorm, RoPE) held back so that a step's chain up to the K/V store
  // runs as one launch (head_chain); any other op launches what is held (count = 0: none).
  HeadChainArgs chain{};
  bool chain_overlaps(const float* p, int64_t count) const {
    for (int i = 0; i < chain.count; ++i) {
      const HeadRowOp& o = chain.op[i];
      if (p < o.x + o.rows * chain.dim && o.x < p + count) return true;
    }
    return false;
  }
  // A new independent op of `rows` rows of `dim` at x can join the held chain.
  bool chain_can_append(const float* x, int64_t rows, int dim) const {
    return chain.count < 2 && (chain.count == 0 || chain.dim == dim) &&
           !chain_overlaps(x, rows * dim);
  }
  void flush_chain() {
    if (chain.count > 0 && !replay()) head_chain(chain, stream);
    chain.count = 0;
    chain.store = false;
  }
  // Held ops other than the add (whose place in the order they would take if it stayed held).
  bool holds_others() const {
    return chain.count > 0 || pending_dot.y != nullptr || pending_gate.x != nullptr ||
           pending_wsum.out != nullptr || pending_exp.y != nullptr;
  }
  void launch_dot(const PendingDot& d) {
    if (d.y != nullptr && !replay()) gemv(d.wv, d.x, 1, d.y, stream);
  }
  // Launches the held gate (with its dot), in issue order.
  void flush_gate() {
    launch_dot(pending_dot);
    pending_dot = {};
    if (pending_gate.x != nullptr && !replay()) {
      launch_dot(pending_gate.dot);
      cuda::sigmoid_mul(pending_gate.x, pending_gate.gate, pending_gate.n, pending_gate.dim, 1, stream);
    }
    pending_gate = {};
  }
  void flush_add() {
    if (pending.y != nullptr && !replay()) {
      if (pending.row) {
        residual_norm(pending.y, pending.terms, nullptr, pending.count, 0.0f, nullptr, nullptr, stream);
      } else if (pending.gate != nullptr) {
        gated_add(pending.y, pending.x, pending.gate, pending.count, pending.gate_every, stream);
      } else {
        cuda::add(pending.y, pending.x, pending.count, stream);
      }
    }
    pending = {};
  }
  void flush_wsum() {
    const PendingWsum& w = pending_wsum;
    if (w.out != nullptr && !replay()) cuda::weighted_sum(w.fo, w.w, 1, w.k, w.dim, w.out, stream);
    pending_wsum = {};
  }
  void flush_experts() {
    if (pending_exp.y != nullptr && !replay()) {
      const PendingExperts& e = pending_exp;
      gemv_q8_experts(&e.w, &e.y, 1, e.xb, false, e.d_ids, e.n, e.k, stream,
                      e.has_shared ? &e.sh : nullptr);
    }
    pending_exp = {};
  }
  // Launches the held ops but the chain, in the order they were issued (a dot and its gate
  // come before the add that reads them; an add held with its weighted sum outstanding reads
  // the sum's output buffer before the sum writes it).
  void flush_others() {
    flush_gate();
    flush_add();
    flush_wsum();
    flush_experts();
  }
  void flush() {
    flush_chain();
    flush_others();
  }
  // Every op begins here: launches a held-back add, and forgets the int8 copy of x unless
  // the op keeps it.
  void enter(bool keep_q8 = false) {
    flush();
    if (!keep_q8) invalidate();
  }

  // Step graphs (backend.h begin_step/end_step). A step key seen the first time runs eagerly
  // while its staged bytes are counted (kMeasure); the second time it is captured into a graph
  // (kCapture, then launched); later it is replayed (kReplay): the ops only write their host
  // arrays into the step buffer, and end_step copies that buffer once and launches the graph.
  // Graph layouts put each block table at a fixed capacity (kv_cap keys) and size attention
  // for kv_cap keys, so that a step of the same key with a longer context replays the graph.
  enum class Mode { kEager, kMeasure, kCapture, kReplay };
  struct StepGraph {
    cudaGraphExec_t exec = nullptr;
    size_t staged_bytes = 0;
  };
  Mode mode = Mode::kEager;
  bool graphs_enabled = true;
  uint64_t step_key = 0;
  int64_t kv_cap = 0;
  int64_t step_tokens = 0;  // tokens of the step (graph layouts size per-token arrays by it)
  bool step_decode_only = false;                  // StepInfo::decode_only of the step in progress
  std::unordered_map<uint64_t, size_t> measured;  // key -> staged bytes of its eager step
  std::unordered_map<uint64_t, StepGraph> graphs;
  uint8_t* step_host = nullptr;  // pinned
  uint8_t* step_dev = nullptr;
  size_t step_cap = 0, step_off = 0;
  cudaEvent_t step_copied = nullptr;  // the last step buffer copy has been read
  bool replay() const { return mode == Mode::kReplay; }

  // Op times of large eager steps (prefill), for benchmarks: with STRATA_CUDA_OP_TIMES set,
  // every op of a step of more than kGraphMaxTokens tokens (but the first such step) first
  // waits for the stream and
  // charges the time since the previous op's start to that op (held-back ops are charged to
  // the op that launches them); the table goes to stderr when the backend goes.
  bool prof_on = std::getenv("STRATA_CUDA_OP_TIMES") != nullptr;
  bool prof_step = false;
  int64_t prof_big_steps = 0;
  const char* prof_name = nullptr;
  std::chrono::steady_clock::time_point prof_t;
  std::map<std::string, std::pair<double, int64_t>> prof;
  void prof_mark(const char* name) {
    if (!prof_on || !prof_step) return;
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
    const auto now = std::chrono::steady_clock::now();
    if (prof_name != nullptr) {
      auto& e = prof[prof_name];
      e.first += std::chrono::duration<double>(now - prof_t).count();
      ++e.second;
    }
    prof_name = name;
    prof_t = now;
  }
  void prof_print() {
    if (prof.empty()) return;
    double total = 0;
    for (const auto& [k, v] : prof) total += v.first;
    std::fprintf(stderr, "[cuda op times] large eager steps, %.1f ms in all\n", total * 1e3);
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [k, v] : prof) rows.push_back({v.first, k});
    std::sort(rows.rbegin(), rows.rend());
    for (const auto& [t, k] : rows)
      std::fprintf(stderr, "  %-22s %9.2f ms %5.1f%%  %6lld calls\n", k.c_str(), t * 1e3, 100 * t / total,
                   static_cast<long long>(prof[k].second));
  }
  bool graph_layout() const { return mode != Mode::kEager; }

  void clear_graphs() {
    for (auto& [k, g] : graphs) cudaGraphExecDestroy(g.exec);
    graphs.clear();
  }
  void ensure_step_buffer(size_t bytes) {
    if (bytes <= step_cap) return;
    // Graphs point into the old buffer: drop them all (recaptured on their next steps).
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
    clear_graphs();
    if (step_host != nullptr) STRATA_CUDA_CHECK(cudaFreeHost(step_host));
    if (step_dev != nullptr) STRATA_CUDA_CHECK(cudaFree(step_dev));
    step_cap = std::max<size_t>(bytes, size_t{64} << 10) * 2;
    STRATA_CUDA_CHECK(cudaMallocHost(&step_host, step_cap));
    STRATA_CUDA_CHECK(cudaMalloc(&step_dev, step_cap));
  }

  // Device copy of `bytes` host bytes, valid for kernels queued next on the stream.
  const void* stage(const void* src, size_t bytes) {
    const size_t need = (bytes + 255) & ~size_t{255};
    if (mode == Mode::kCapture || mode == Mode::kReplay) {
      STRATA_CHECK_MSG(step_off + need <= step_cap, "step staged more than its recorded size");
      std::memcpy(step_host + step_off, src, bytes);
      const void* d = step_dev + step_off;
      step_off += need;
      return d;
    }
    if (mode == Mode::kMeasure) step_off += need;
    if (ring_off + need > ring_bytes) {
      STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
      ring_off = 0;
      if (need > ring_bytes) {
        if (ring_host != nullptr) STRATA_CUDA_CHECK(cudaFreeHost(ring_host));
        if (ring_dev != nullptr) STRATA_CUDA_CHECK(cudaFree(ring_dev));
        ring_bytes = std::max<size_t>(need, size_t{4} << 20);
        STRATA_CUDA_CHECK(cudaMallocHost(&ring_host, ring_bytes));
        STRATA_CUDA_CHECK(cudaMalloc(&ring_dev, ring_bytes));
      }
    }
    std::memcpy(ring_host + ring_off, src, bytes);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(ring_dev + ring_off, ring_host + ring_off, bytes,
                                      cudaMemcpyHostToDevice, stream));
    const void* d = ring_dev + ring_off;
    ring_off += need;
    return d;
  }
  // The DeltaNet ops' segments, staged as [num_chains][chains][segs][row_chain] (DnPlan). In
  // a step graph every array is sized for the step's tokens (at most one segment and one
  // chain per token), so that steps of one key stage the same bytes and launch the same grid.
  DnPlan stage_segments(std::span<const RecurrentSeg> segs) {
    std::vector<DnChain> chains;
    int64_t rows = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      const RecurrentSeg& g = segs[i];
      rows = std::max(rows, g.row_begin + g.num_rows);
      const bool joins = i > 0 && g.state_in != nullptr && g.state_in == segs[i - 1].state_out;
      if (joins) {
        STRATA_CHECK_MSG(g.row_begin == segs[i - 1].row_begin + segs[i - 1].num_rows,
                         "a segment that reads the previous one's state must follow its rows");
        chains.back().seg_end = static_cast<int32_t>(i + 1);
      } else {
        chains.push_back({g.row_begin, static_cast<int32_t>(i), static_cast<int32_t>(i + 1)});
      }
    }
    size_t cap_chains = chains.size(), cap_segs = segs.size();
    if (graph_layout()) {
      STRATA_CHECK_MSG(rows <= step_tokens && static_cast<int64_t>(segs.size()) <= step_tokens,
                       "step's segments over its tokens");
      rows = step_tokens;
      cap_chains = cap_segs = static_cast<size_t>(step_tokens);
    }
    const size_t chains_off = 16, segs_off = chains_off + cap_chains * sizeof(DnChain);
    const size_t rows_off = segs_off + cap_segs * sizeof(DnSeg);
    dn_host.assign(rows_off + static_cast<size_t>(rows) * 4, 0);
    const auto num = static_cast<int32_t>(chains.size());
    std::memcpy(dn_host.data(), &num, 4);
    auto* h_chains = reinterpret_cast<DnChain*>(dn_host.data() + chains_off);
    auto* h_segs = reinterpret_cast<DnSeg*>(dn_host.data() + segs_off);
    auto* h_rows = reinterpret_cast<int32_t*>(dn_host.data() + rows_off);
    std::copy(chains.begin(), chains.end(), h_chains);
    std::fill(h_rows, h_rows + rows, -1);
    for (size_t c = 0; c < chains.size(); ++c) {
      for (int32_t i = chains[c].seg_begin; i < chains[c].seg_end; ++i) {
        const RecurrentSeg& g = segs[static_cast<size_t>(i)];
        h_segs[i] = {g.row_begin, g.num_rows, g.state_in, g.state_out};
        std::fill(h_rows + g.row_begin, h_rows + g.row_begin + g.num_rows, static_cast<int32_t>(c));
      }
    }
    const auto* dev = static_cast<const uint8_t*>(stage(dn_host.data(), dn_host.size()));
    DnPlan p{};
    p.num_chains = reinterpret_cast<const int32_t*>(dev);
    p.chains = reinterpret_cast<const DnChain*>(dev + chains_off);
    p.segs = reinterpret_cast<const DnSeg*>(dev + segs_off);
    p.row_chain = reinterpret_cast<const int32_t*>(dev + rows_off);
    p.rows = rows;
    p.max_chains = static_cast<int64_t>(cap_chains);
    return p;
  }
  // Expert products of many tokens (prefill): the slots grouped by expert on the host (one
  // device-to-host copy of the ids and a wait), each group's x rows gathered as bf16 and padded
  // to the largest group, every expert's weights dequantized to bf16, and one strided batched
  // GEMM over all experts; then the rows go back to their slots. Eager steps only (it waits).
  void experts_grouped(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                       int64_t n, int k, float* y) {
    const int64_t slots = n * k;
    const int experts = static_cast<int>(w.num_experts);
    std::vector<int32_t> h_ids(static_cast<size_t>(slots));
    if (is_device_pointer(ids)) {
      STRATA_CUDA_CHECK(cudaMemcpyAsync(h_ids.data(), ids, static_cast<size_t>(slots) * 4,
                                        cudaMemcpyDeviceToHost, stream));
      STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
    } else {
      std::memcpy(h_ids.data(), ids, static_cast<size_t>(slots) * 4);
    }
    // [order: slots][offsets: experts + 1]
    std::vector<int32_t> host(static_cast<size_t>(slots + experts + 1), 0);
    int32_t* order = host.data();
    int32_t* offsets = host.data() + slots;
    for (int32_t e : h_ids) {
      STRATA_CHECK_MSG(e >= 0 && e < experts, "expert id out of range");
      ++offsets[e + 1];
    }
    int64_t max_count = 0;
    for (int e = 0; e < experts; ++e) {
      max_count = std::max<int64_t>(max_count, offsets[e + 1]);
      offsets[e + 1] += offsets[e];
    }
    std::vector<int32_t> fill(offsets, offsets + experts);
    for (int64_t j = 0; j < slots; ++j) order[fill[static_cast<size_t>(h_ids[static_cast<size_t>(j)])]++] = static_cast<int32_t>(j);
    const auto* dev = static_cast<const int32_t*>(stage(host.data(), host.size() * 4));
    const int32_t* d_order = dev;
    const int32_t* d_offsets = dev + slots;
    prof_mark("experts: dequantize");
    const size_t wcount = static_cast<size_t>(w.rows * w.cols);
    auto* wb = static_cast<__nv_bfloat16*>(w_bf16.get(wcount * experts * 2));
    if (w.expert_bytes == w.row_bytes * static_cast<size_t>(w.rows)) {
      WeightView all = w;
      all.rows = w.rows * experts;
      all.num_experts = 1;
      dequantize_bf16(all, wb, stream);
    } else {
      for (int e = 0; e < experts; ++e) {
        WeightView one = w;
        one.data = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(e) * w.expert_bytes;
        one.num_experts = 1;
        dequantize_bf16(one, wb + static_cast<size_t>(e) * wcount, stream);
      }
    }
    auto* xb = static_cast<__nv_bfloat16*>(
        x_bf16.get(static_cast<size_t>(experts * max_count * w.cols) * 2));
    auto* yb = static_cast<float*>(moe_y.get(static_cast<size_t>(experts * max_count * w.rows) * 4));
    prof_mark("experts: gather+gemm");
    moe_gather_bf16(x, w.cols, x_per_slot, k, d_order, d_offsets, experts, max_count, xb, stream);
    const float one = 1.0f, zero = 0.0f;
    STRATA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), static_cast<int>(max_count),
        static_cast<int>(w.cols), &one, wb, CUDA_R_16BF, static_cast<int>(w.cols),
        static_cast<long long>(wcount), xb, CUDA_R_16BF, static_cast<int>(w.cols),
        static_cast<long long>(max_count * w.cols), &zero, yb, CUDA_R_32F,
        static_cast<int>(w.rows), static_cast<long long>(max_count * w.rows), experts,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    moe_scatter(yb, w.rows, d_order, d_offsets, experts, max_count, y, stream);
  }
  // A device view of n int32 values at p (host or device).
  const int32_t* stage_i32(const int32_t* p, size_t n) {
    if (n == 0 || is_device_pointer(p)) return p;
    return static_cast<const int32_t*>(stage(p, n * sizeof(int32_t)));
  }
};

}  // namespace strata::backend::cuda
