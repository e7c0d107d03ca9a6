// Expert products of one token on int8 activations (gemv_q8.cuh's dot products): the MoE
// decode kernels (split from matmul.cu). Run 33 (cuda_gemv_bench): 4 row groups a warp, or the
// parts loop unrolled 4 times, were slower on every MoE shape (bench/cuda/NOTES.md, round 5).
#include <algorithm>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

// Expert products on int8 activations (MoE v3, bench/cuda/NOTES.md): slot j = blockIdx.y uses
// expert ids[j]; blockIdx.z picks one of up to 2 weights of one cols (gate and up in one
// launch). A warp computes 2 groups of 32 / LPR rows, LPR lanes a row walking its parts, so a
// short row (768 columns: 24 Q4_K parts) still keeps the lanes busy; no shared memory.
struct ExpertSeg {
  const uint8_t* w;
  size_t row_bytes, expert_bytes;
  int64_t rows;
  float* y;  // [slots, rows]
  DType type;
};
struct ExpertArgs {
  ExpertSeg seg[2];
  ExpertSeg sh[2];  // the shared expert's weights (slot k of each token), if has_shared
  int64_t cols;
  const int32_t* ids;  // [tokens, k]
  int k;
  int spt;  // slots a token: k, or k + 1 with the shared expert
  bool has_shared;
  bool x_per_slot;  // x row = slot, else the slot's token
  int q6k_groups;   // gemv_q6k_groups()
  int q4k_elems;    // gemv_q4k_elems()
};
constexpr int kExpertRowGroups = 2;

template <class D, class Dot, int LPR>
__device__ __forceinline__ void expert_rows(const ExpertSeg& g, int64_t cols, const Q8Act& x,
                                            float* y, const uint8_t* w, int64_t row_base) {
  const int lane = static_cast<int>(threadIdx.x) % 32, li = lane % LPR;
  const int num_parts = static_cast<int>(cols / D::kBlockElems) * D::kParts;
  int64_t row[kExpertRowGroups];
  float acc[kExpertRowGroups];
#pragma unroll
  for (int r = 0; r < kExpertRowGroups; ++r) {
    row[r] = min(row_base + r * (32 / LPR) + lane / LPR, g.rows - 1);  // clamped: no early exit
    acc[r] = 0.0f;
  }
  for (int i = li; i < num_parts; i += LPR) {
    const int blk = i / D::kParts, p = i % D::kParts;
    const int64_t e0 = static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
    for (int r = 0; r < kExpertRowGroups; ++r)
      acc[r] += Dot::dot(w + row[r] * g.row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p, x, e0);
  }
#pragma unroll
  for (int r = 0; r < kExpertRowGroups; ++r) {
    float s = acc[r];
#pragma unroll
    for (int o = LPR / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (li == 0 && row_base + r * (32 / LPR) + lane / LPR < g.rows) y[row[r]] = s;
  }
}

template <int LPR>
__global__ void __launch_bounds__(kGemvThreads) gemv_q8_experts_kernel(ExpertArgs a, Q8Act x) {
  pdl_begin();
  const int64_t slot = blockIdx.y, t = slot / a.spt, s = slot % a.spt;
  const bool shared = a.has_shared && s == a.k;  // MoE v8: the shared expert as slot k
  // No run-time index into the arrays: no stack.
  const ExpertSeg g = shared ? (blockIdx.z == 0 ? a.sh[0] : a.sh[1])
                             : (blockIdx.z == 0 ? a.seg[0] : a.seg[1]);
  constexpr int kRowsPerWarp = kExpertRowGroups * 32 / LPR;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int64_t row_base =
      (static_cast<int64_t>(blockIdx.x) * (kGemvThreads / 32) + warp) * kRowsPerWarp;
  if (row_base >= g.rows) return;
  const int64_t xr = a.x_per_slot ? slot : t;
  const Q8Act xs{x.xq + xr * a.cols / 4, x.xd + xr * a.cols / 32, x.xs + xr * a.cols / 16};
  const uint8_t* w =
      shared ? g.w : g.w + static_cast<size_t>(a.ids[t * a.k + s]) * g.expert_bytes;
  float* y = g.y + slot * g.rows;
  switch (g.type) {
    case DType::kQ8_0:
      expert_rows<DeqQ8_0, DotQ8_0, LPR>(g, a.cols, xs, y, w, row_base);
      break;
    case DType::kQ4_0:
      expert_rows<DeqQ4_0, DotQ4_0, LPR>(g, a.cols, xs, y, w, row_base);
      break;
    case DType::kQ4_K:
      if (a.q4k_elems == 64)
        expert_rows<PartsQ4_K64, DotQ4_K64, LPR>(g, a.cols, xs, y, w, row_base);
      else
        expert_rows<DeqQ4_K, DotQ4_K, LPR>(g, a.cols, xs, y, w, row_base);
      break;
    default:
      if (a.q6k_groups == 2)
        expert_rows<PartsQ6_K2, DotQ6_K2, LPR>(g, a.cols, xs, y, w, row_base);
      else
        expert_rows<DeqQ6_K, DotQ6_K, LPR>(g, a.cols, xs, y, w, row_base);
      break;
  }
}

}  // namespace

void gemv_q8_experts(const WeightView* ws, float* const* ys, int count, const Q8Buf& xb,
                     bool x_per_slot, const int32_t* ids, int64_t n, int k, cudaStream_t s,
                     const WeightView* shared) {
  STRATA_CHECK(count >= 1 && count <= 2);
  ExpertArgs a{};
  a.cols = ws[0].cols;
  a.ids = ids;
  a.k = k;
  a.spt = shared != nullptr ? k + 1 : k;
  a.has_shared = shared != nullptr;
  a.x_per_slot = x_per_slot;
  a.q6k_groups = gemv_q6k_groups();
  a.q4k_elems = gemv_q4k_elems();
  for (int i = 0; shared != nullptr && i < count; ++i) {
    const WeightView& w = shared[i];
    STRATA_CHECK(gemv_q8_supported(w.type) && w.cols == a.cols && w.rows == ws[i].rows &&
                 w.cols % native_block_elems(w.type) == 0);
    a.sh[i] = {static_cast<const uint8_t*>(w.data), w.row_bytes, 0, w.rows, ys[i], w.type};
  }
  int64_t max_rows = 0, parts = 1 << 30;
  for (int i = 0; i < count; ++i) {
    const WeightView& w = ws[i];
    STRATA_CHECK(gemv_q8_supported(w.type) && w.cols == a.cols &&
                 w.cols % native_block_elems(w.type) == 0);
    a.seg[i] = {static_cast<const uint8_t*>(w.data), w.row_bytes, w.expert_bytes, w.rows, ys[i],
                w.type};
    max_rows = std::max(max_rows, w.rows);
    parts = std::min(parts, gemv_q8_row_parts(w.type, w.cols));
  }
  // Lanes a row: at least 2 parts each where the row has them.
  const int lpr = parts >= 64 ? 32 : parts >= 32 ? 16 : 8;
  const int64_t rows_per_cta = (kGemvThreads / 32) * kExpertRowGroups * (32 / lpr);
  const dim3 grid(static_cast<unsigned>((max_rows + rows_per_cta - 1) / rows_per_cta),
                  static_cast<unsigned>(n * a.spt), static_cast<unsigned>(count));
  const Q8Act x{reinterpret_cast<const int*>(xb.xq), xb.xd, xb.xs};
  if (lpr == 32)
    launch_kernel(gemv_q8_experts_kernel<32>, grid, kGemvThreads, 0, s, a, x);
  else if (lpr == 16)
    launch_kernel(gemv_q8_experts_kernel<16>, grid, kGemvThreads, 0, s, a, x);
  else
    launch_kernel(gemv_q8_experts_kernel<8>, grid, kGemvThreads, 0, s, a, x);
}

}  // namespace strata::backend::cuda
