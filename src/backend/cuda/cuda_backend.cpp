// CudaBackend: device memory, staging of host index arrays, step graphs (decode steps recorded
// once and replayed), and the choice between the matrix-vector kernels (decode) and cuBLAS on
// dequantized bf16 weights (prefill).
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
namespace {

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
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

uint64_t mix_key(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

bool is_device_pointer(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

}  // namespace

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
  Scratch act_q8;          // batch-1 int8 activations: xq, xd, xs
  Scratch cublas_ws;       // cuBLAS workspace
  Scratch moe_y;           // MoE prefill: the grouped products' outputs
  Scratch dn_prep;         // DeltaNet prefill: normalised q, k and gates of every row
  std::vector<uint8_t> attn_host;  // attention's packed host arrays
  std::vector<uint8_t> dn_host;    // the DeltaNet ops' packed segments (DnPlan)
  // The activation act_q8 holds (q/k/v and gate/up share one x): valid until any other op
  // runs or a product writes over it. RMSNorm and SwiGLU of one token write it as they write
  // their output (fused quantization); every other op forgets it (enter()).
  const float* q8_src = nullptr;
  int64_t q8_cols = 0;
  void invalidate() { q8_src = nullptr; }
  // Forget the int8 copy if [p, p + bytes) overlaps its source (an op wrote over it).
  void invalidate_if_written(const void* p, size_t bytes) {
    const auto* b = static_cast<const uint8_t*>(p);
    const auto* src = reinterpret_cast<const uint8_t*>(q8_src);
    if (q8_src != nullptr && b < src + q8_cols * 4 && src < b + bytes) invalidate();
  }
  // [xq: cols int8][xd: cols/32 f32][xs: cols/16 int32] for an input of `cols`.
  Q8Buf q8_buffers(int64_t cols) {
    auto* base = static_cast<uint8_t*>(act_q8.get(static_cast<size_t>(cols) * 2 + 64));
    return {reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(base + cols),
            reinterpret_cast<int32_t*>(base + cols + cols / 8)};
  }
  // An add (y += x) held back so that the next op, when it is the RMSNorm of y, runs fused
  // with it (the residual add before each norm); any other op launches it first.
  // A gated add (from a held sigmoid_mul of x by one gate a row, then y += x) launches as one
  // kernel that also writes the gated x, and does not fuse into the norm.
  struct PendingAdd {
    float* y = nullptr;
    float* x = nullptr;
    int64_t count = 0;
    const float* gate = nullptr;  // set: x[i] *= sigmoid(gate[i / gate_every]) first
    int64_t gate_every = 0;
  } pending;
  // A sigmoid_mul with one gate a row (the shared expert's gate) held back so that the add of
  // its x that follows runs in the same kernel; any other op launches it first.
  struct PendingGate {
    float* x = nullptr;
    const float* gate = nullptr;
    int64_t n = 0, dim = 0;
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
  // Launches the held add and expert product, not the chain.
  void flush_others() {
    if (pending_gate.x != nullptr && !replay()) {
      cuda::sigmoid_mul(pending_gate.x, pending_gate.gate, pending_gate.n, pending_gate.dim, 1, stream);
    }
    pending_gate = {};
    if (pending.y != nullptr && !replay()) {
      if (pending.gate != nullptr) {
        gated_add(pending.y, pending.x, pending.gate, pending.count, pending.gate_every, stream);
      } else {
        cuda::add(pending.y, pending.x, pending.count, stream);
      }
    }
    pending = {};
    if (pending_exp.y != nullptr && !replay()) {
      const PendingExperts& e = pending_exp;
      gemv_q8_experts(&e.w, &e.y, 1, q8_buffers(e.w.cols), false, e.d_ids, e.n, e.k, stream);
    }
    pending_exp = {};
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

bool CudaBackend::available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

CudaBackend::CudaBackend(int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  STRATA_CUDA_CHECK(cudaSetDevice(device));
  STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  STRATA_CUBLAS_CHECK(cublasCreate(&impl_->cublas));
  STRATA_CUBLAS_CHECK(cublasSetStream(impl_->cublas, impl_->stream));
  // Exact f32 products for F32 weights: no TF32.
  STRATA_CUBLAS_CHECK(cublasSetMathMode(impl_->cublas, CUBLAS_DEFAULT_MATH));
  // A workspace of our own: cuBLAS then allocates nothing inside a graph capture.
  STRATA_CUBLAS_CHECK(cublasSetWorkspace(impl_->cublas, impl_->cublas_ws.get(kCublasWorkspace),
                                         kCublasWorkspace));
  STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->step_copied, cudaEventDisableTiming));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(impl_->stream);
  impl_->prof_print();
  impl_->clear_graphs();
  if (impl_->step_host != nullptr) cudaFreeHost(impl_->step_host);
  if (impl_->step_dev != nullptr) cudaFree(impl_->step_dev);
  cudaEventDestroy(impl_->step_copied);
  impl_->cublas_ws.release();
  for (void* p : impl_->weights) cudaFree(p);
  if (impl_->ring_host != nullptr) cudaFreeHost(impl_->ring_host);
  if (impl_->ring_dev != nullptr) cudaFree(impl_->ring_dev);
  impl_->w_bf16.release();
  impl_->x_bf16.release();
  impl_->partial.release();
  impl_->act_q8.release();
  impl_->moe_y.release();
  impl_->dn_prep.release();
  cublasDestroy(impl_->cublas);
  cudaStreamDestroy(impl_->stream);
}

float* CudaBackend::alloc_f32(size_t count) {
  impl_->enter();
  void* p = nullptr;
  if (count == 0) return nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&p, count * sizeof(float)));
  return static_cast<float*>(p);
}

void* CudaBackend::alloc_shared(size_t bytes) {
  impl_->enter();
  void* p = nullptr;
  if (bytes == 0 || cudaMallocManaged(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  cudaMemLocation gpu{};
  gpu.type = cudaMemLocationTypeDevice;
  gpu.id = impl_->device;
  (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, gpu);
  (void)cudaGetLastError();  // advice is a hint: ignore where unsupported
  return p;
}

void CudaBackend::free_shared(void* p) {
  impl_->enter();
  if (p == nullptr) return;
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  STRATA_CUDA_CHECK(cudaFree(p));
}

void CudaBackend::free(void* p) {
  impl_->enter();
  if (p == nullptr) return;
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  STRATA_CUDA_CHECK(cudaFree(p));
}

void CudaBackend::copy_to_host(const float* src, size_t count, float* dst) {
  impl_->enter(true);
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost, impl_->stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void CudaBackend::copy_from_host(const float* src, size_t count, float* dst) {
  impl_->enter();
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyHostToDevice, impl_->stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

WeightView CudaBackend::upload_weight(const WeightView& host) {
  impl_->enter();
  if (host.data == nullptr) return host;
  WeightView w = host;
  const int64_t experts = std::max<int64_t>(1, host.num_experts);
  const size_t expert_bytes =
      host.expert_bytes != 0 ? host.expert_bytes : host.row_bytes * static_cast<size_t>(host.rows);
  std::vector<uint8_t> converted;
  const void* src = host.data;
  size_t bytes = expert_bytes * static_cast<size_t>(experts);
  if (!native_type(host.type) || host.cols % native_block_elems(host.type) != 0) {
    // Generic path: decode on the host to F16 (F32 if the row does not fit the F16 kernel).
    STRATA_CHECK_MSG(can_dequantize(host.type), "weight type cannot be dequantized");
    const bool f16 = host.cols % 8 == 0;
    w.type = f16 ? DType::kF16 : DType::kF32;
    w.row_bytes = static_cast<size_t>(host.cols) * (f16 ? 2 : 4);
    w.expert_bytes = w.row_bytes * static_cast<size_t>(host.rows);
    bytes = w.expert_bytes * static_cast<size_t>(experts);
    converted.resize(bytes);
    std::vector<float> row(static_cast<size_t>(host.cols));
    for (int64_t e = 0; e < experts; ++e) {
      for (int64_t r = 0; r < host.rows; ++r) {
        const auto* in =
            static_cast<const uint8_t*>(host.data) + e * expert_bytes + r * host.row_bytes;
        dequantize_row(host.type, in, row.data(), host.cols);
        uint8_t* out = converted.data() + e * w.expert_bytes + r * w.row_bytes;
        if (f16) {
          for (int64_t i = 0; i < host.cols; ++i) {
            const uint16_t h = f32_to_fp16(row[static_cast<size_t>(i)]);
            std::memcpy(out + 2 * i, &h, 2);
          }
        } else {
          std::memcpy(out, row.data(), w.row_bytes);
        }
      }
    }
    src = converted.data();
  } else {
    w.expert_bytes = expert_bytes;
  }
  void* d = nullptr;
  // 16 bytes of padding: the 2-byte-aligned formats load whole words past a block's end.
  STRATA_CUDA_CHECK(cudaMalloc(&d, bytes + 16));
  STRATA_CUDA_CHECK(cudaMemset(static_cast<uint8_t*>(d) + bytes, 0, 16));
  STRATA_CUDA_CHECK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
  impl_->weights.push_back(d);
  w.data = d;
  return w;
}

void CudaBackend::get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  impl_->prof_mark("get_rows");
  impl_->enter();
  if (n == 0) return;
  const int32_t* d_ids = impl_->stage_i32(ids, static_cast<size_t>(n));
  if (impl_->replay()) return;
  cuda::get_rows(w, d_ids, n, out, impl_->stream);
}

void CudaBackend::matmul(const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_multi({&w, 1}, x, n, {&y, 1});
}

void CudaBackend::matmul_multi(std::span<const WeightView> ws, const float* x, int64_t n,
                               std::span<float* const> ys) {
  impl_->prof_mark("matmul");
  STRATA_CHECK(ws.size() == ys.size() && !ws.empty());
  if (n == 0) return;
  cudaStream_t s = impl_->stream;
  bool q8 = n == 1 && ws.size() <= kMaxGemvSegments;
  for (const WeightView& w : ws)
    q8 = q8 && gemv_q8_supported(w.type) && w.cols % 32 == 0 && w.cols == ws[0].cols;
  if (q8) {
    // One int8 copy of x for all the products (and for those after, until x changes).
    const int64_t cols = ws[0].cols;
    impl_->enter(true);
    if (impl_->replay()) return;
    const Q8Buf b = impl_->q8_buffers(cols);
    if (impl_->q8_src != x || impl_->q8_cols != cols) quantize_act_q8(x, cols, b.xq, b.xd, b.xs, s);
    impl_->q8_src = x;
    impl_->q8_cols = cols;
    gemv_q8_multi(ws.data(), ys.data(), static_cast<int>(ws.size()), b, s);
    for (size_t i = 0; i < ws.size(); ++i) {
      if (ys[i] < x + cols && x < ys[i] + ws[i].rows) impl_->invalidate();  // wrote over x
    }
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
    // Batch 1: int8 products. x (n rows, or n*k with x_per_slot) quantized once; the product
    // of the same x and ids after a held-back one (up after gate) joins its launch.
    const Impl::PendingExperts held = m.pending_exp;
    const bool join = !x_per_slot && held.y != nullptr && held.x == x && held.ids == ids &&
                      held.n == n && held.k == k && held.w.cols == w.cols;
    if (join) m.pending_exp = {};
    m.enter(true);
    const int32_t* d_ids = m.stage_i32(ids, static_cast<size_t>(n * k));
    if (m.replay()) return;
    const int64_t cols = (x_per_slot ? n * k : n) * w.cols;
    const Q8Buf b = m.q8_buffers(cols);
    if (m.q8_src != x || m.q8_cols != cols) quantize_act_q8(x, cols, b.xq, b.xd, b.xs, m.stream);
    m.q8_src = x;
    m.q8_cols = cols;
    if (join) {
      const WeightView ws[2] = {held.w, w};
      float* const ys[2] = {held.y, y};
      gemv_q8_experts(ws, ys, 2, b, false, d_ids, n, k, m.stream);
      m.invalidate_if_written(held.y, static_cast<size_t>(n * k * held.w.rows) * 4);
    } else if (!x_per_slot) {
      m.pending_exp = {w, x, ids, d_ids, n, k, y};
      return;  // launched by the next op (joined if it is the matching up product)
    } else {
      gemv_q8_experts(&w, &y, 1, b, true, d_ids, n, k, m.stream);
    }
    m.invalidate_if_written(y, static_cast<size_t>(n * k * w.rows) * 4);
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

void CudaBackend::rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                           float* out) {
  impl_->prof_mark("rms_norm");
  Impl& m = *impl_;
  // The residual add held back by add() runs inside the norm when it adds into x.
  const bool fuse_add = m.pending.y == x && m.pending.count == n * dim && m.pending.gate == nullptr;
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
  // One token whose norm feeds the int8 products: quantize it in the same kernel.
  const bool q8 = n == 1 && dim % 32 == 0;
  Q8Buf b{};
  if (q8) b = m.q8_buffers(dim);
  rms_norm_fused(fuse_add ? add.y : nullptr, fuse_add ? add.x : nullptr, x, weight, n, dim, eps,
                 out, q8 ? &b : nullptr, m.stream);
  if (q8) {
    m.q8_src = out;
    m.q8_cols = dim;
  }
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
  cuda::attention(kv, a, m.stream);
}

void CudaBackend::swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) {
  impl_->prof_mark("swiglu");
  Impl& m = *impl_;
  m.enter();
  if (m.replay()) return;
  // One token (the input of ffn_down), or one token's k expert slots (the input of the
  // experts' down): quantize for the int8 product in the same kernel.
  if ((n == 1 || n * dim <= kSwigluQ8MaxElems) && dim % 32 == 0) {
    const Q8Buf b = m.q8_buffers(n * dim);
    swiglu_q8(gate, up, n * dim, out, b, m.stream);
    m.q8_src = out;
    m.q8_cols = n * dim;
    return;
  }
  cuda::swiglu(gate, up, n * dim, out, m.stream);
}

void CudaBackend::add(float* y, const float* x, int64_t count) {
  Impl& m = *impl_;
  m.prof_mark("add");
  // The add of a held gated x: one kernel for both.
  const Impl::PendingGate g = m.pending_gate;
  const bool gated = g.x == x && g.n * g.dim == count;
  if (gated) m.pending_gate = {};
  m.enter();
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
  // Keeps the int8 copy of the FFN input (the router and experts read it next).
  impl_->enter(true);
  impl_->invalidate_if_written(x, static_cast<size_t>(n * dim) * 4);
  if (gate_dim == 1 && n * dim > 0) {  // held: joins the add of x that usually follows
    impl_->pending_gate = {x, gate, n, dim};
    return;
  }
  if (impl_->replay()) return;
  cuda::sigmoid_mul(x, gate, n, dim, gate_dim, impl_->stream);
}

void* CudaBackend::stream() const { return impl_->stream; }

void CudaBackend::synchronize() {
  impl_->prof_mark(nullptr);
  impl_->enter(true);
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void CudaBackend::set_step_graphs(bool on) {
  STRATA_CHECK(impl_->mode == Impl::Mode::kEager);
  impl_->graphs_enabled = on;
}

void CudaBackend::begin_step(const StepInfo& step) {
  Impl& m = *impl_;
  STRATA_CHECK_MSG(m.mode == Impl::Mode::kEager, "begin_step inside a step");
  m.enter();
  // The first large step is left out (lazy module loading, first allocations).
  if (step.num_tokens > kGraphMaxTokens) ++m.prof_big_steps;
  m.prof_step = step.num_tokens > kGraphMaxTokens && m.prof_big_steps > 1;
  m.prof_mark(nullptr);
  if (!m.graphs_enabled || step.num_tokens > kGraphMaxTokens) return;
  // Capacity: the next power of two of the longest context, at least 256 keys.
  int64_t cap = 256;
  while (cap < step.max_kv_len) cap *= 2;
  m.kv_cap = cap;
  m.step_tokens = step.num_tokens;
  m.step_key = mix_key(step.key, static_cast<uint64_t>(cap));
  m.step_off = 0;
  if (m.graphs.count(m.step_key) != 0) {
    m.mode = Impl::Mode::kReplay;
    // The pinned step buffer is rewritten now: the last step's copy must have read it.
    STRATA_CUDA_CHECK(cudaEventSynchronize(m.step_copied));
    return;
  }
  const auto seen = m.measured.find(m.step_key);
  if (seen == m.measured.end()) {
    m.mode = Impl::Mode::kMeasure;
    return;
  }
  if (m.graphs.size() >= kMaxGraphs) {
    STRATA_CUDA_CHECK(cudaStreamSynchronize(m.stream));
    m.clear_graphs();
  }
  m.ensure_step_buffer(seen->second);
  STRATA_CUDA_CHECK(cudaEventSynchronize(m.step_copied));
  m.mode = Impl::Mode::kCapture;
  STRATA_CUDA_CHECK(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeRelaxed));
}

void CudaBackend::end_step() {
  Impl& m = *impl_;
  m.flush();
  m.prof_mark(nullptr);
  m.prof_step = false;
  m.invalidate();
  const Impl::Mode mode = m.mode;
  m.mode = Impl::Mode::kEager;
  switch (mode) {
    case Impl::Mode::kEager:
      return;
    case Impl::Mode::kMeasure:
      m.measured[m.step_key] = m.step_off;
      return;
    case Impl::Mode::kCapture: {
      cudaGraph_t graph = nullptr;
      STRATA_CUDA_CHECK(cudaStreamEndCapture(m.stream, &graph));
      Impl::StepGraph g;
      STRATA_CUDA_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
      STRATA_CUDA_CHECK(cudaGraphDestroy(graph));
      g.staged_bytes = m.step_off;
      m.graphs[m.step_key] = g;
      break;
    }
    case Impl::Mode::kReplay:
      break;
  }
  const Impl::StepGraph& g = m.graphs.at(m.step_key);
  STRATA_CHECK_MSG(m.step_off == g.staged_bytes, "step does not match its recorded graph");
  if (m.step_off > 0) {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(m.step_dev, m.step_host, m.step_off, cudaMemcpyHostToDevice,
                                      m.stream));
  }
  STRATA_CUDA_CHECK(cudaEventRecord(m.step_copied, m.stream));
  STRATA_CUDA_CHECK(cudaGraphLaunch(g.exec, m.stream));
}

}  // namespace strata::backend::cuda
