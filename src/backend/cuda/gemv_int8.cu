// Int8 products (bench/cuda/NOTES.md): the batch-1 kernels (v3: a CTA over R rows' parts; v5: a
// warp a row), several weights of one x in one launch, and 2-16 tokens of a decode step (v12);
// the rule that picks among them, and the activations' int8 quantization. The formats' dots are
// in gemv_q8.cuh.
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

// Where a row has fewer parts than the CTA has threads, a power of two fewer (v14), the
// threads split into groups: group g takes rows g, g + mask + 1, ... (else all take all rows).
struct RowGroups {
  int g, mask, first;  // the thread's group, groups - 1, its first part
};
__device__ __forceinline__ RowGroups row_groups(int num_parts) {
  const int tid = static_cast<int>(threadIdx.x);
  if (num_parts >= kGemvThreads || kGemvThreads % num_parts != 0) return {0, 0, tid};
  return {tid / num_parts, kGemvThreads / num_parts - 1, tid % num_parts};
}

// A product CTA's start (launch.cuh; start: pdl_product_start()): its weight rows
// [row0, row0 + R) asked into L2 where bit 0 is set (weights are read before the wait: no
// kernel writes them), then the wait, unless its rows load their first weights before it
// (preload: they wait themselves).
__device__ __forceinline__ bool preloads(int start, bool q8_0) {
  return (start & 4) != 0 || ((start & 2) != 0 && q8_0);
}
__device__ __forceinline__ void product_begin(const uint8_t* w, size_t row_bytes, int64_t rows,
                                              int64_t row0, int R, int start, bool preload) {
  if ((start & 1) != 0 && threadIdx.x == 0 && row0 < rows) {
    const auto a = reinterpret_cast<uintptr_t>(w + row0 * row_bytes) & ~uintptr_t{15};
    const auto e =
        (reinterpret_cast<uintptr_t>(w + min(rows, row0 + R) * row_bytes) + 15) & ~uintptr_t{15};
    prefetch_l2(reinterpret_cast<const void*>(a), static_cast<uint32_t>(e - a));
  }
  if (!preload) pdl_wait();
}

// The first part (i) of each active row's weights loaded before the PDL wait, then taken into
// acc after it: a product whose CTAs became resident early (pdl_product_start) has its first
// weights in flight while the kernel ahead of it ends. active(r): row r of the N is the
// thread's and exists.
template <class D, class Dot, int N, class Active>
__device__ __forceinline__ void preload_first_part(const uint8_t* w, size_t row_bytes, int i,
                                                   int num_parts, const Q8Act& x, float* acc,
                                                   Active active) {
  typename Dot::W pre[N];
  const int blk = i / D::kParts, p = i % D::kParts;
  const bool any = i < num_parts;
#pragma unroll
  for (int r = 0; r < N; ++r) {
    if (any && active(r))
      pre[r] = Dot::load(w + r * row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p);
  }
  pdl_wait();
  const int64_t e0 = static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
  for (int r = 0; r < N; ++r) {
    if (any && active(r)) acc[r] += Dot::dotw(pre[r], p, x, e0);
  }
}

// v3: R rows per CTA, int8 activations, __dp4a (gemv_q8.cuh). Rows [row0, row0 + R) of w.
template <class D, class Dot, int R>
__device__ __forceinline__ void gemv_q8_rows(const uint8_t* wbase, size_t row_bytes, int64_t rows,
                                             int64_t cols, const Q8Act& x, float* y, int64_t row0,
                                             bool preload) {
  __shared__ float red[kGemvThreads / 32][R];
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const uint8_t* w = wbase + row0 * row_bytes;
  const int nr = static_cast<int>(min(static_cast<int64_t>(R), rows - row0));
  const int num_parts = static_cast<int>(cols / D::kBlockElems) * D::kParts;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  const RowGroups rg = row_groups(num_parts);
  int i = rg.first;
  if (preload) {
    preload_first_part<D, Dot, R>(w, row_bytes, i, num_parts, x, acc,
                                  [&](int r) { return r < nr && (r & rg.mask) == rg.g; });
    i += kGemvThreads;
  }
  for (; i < num_parts; i += kGemvThreads) {
    const int blk = i / D::kParts, p = i % D::kParts;
    const int64_t e0 = static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r < nr && (r & rg.mask) == rg.g)
        acc[r] += Dot::dot(w + r * row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p, x, e0);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float s = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) red[warp][r] = s;
  }
  __syncthreads();
  if (tid < nr) {
    float s = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kGemvThreads / 32; ++wi) s += red[wi][tid];
    y[row0 + tid] = s;
  }
}

// v5: a warp per RW rows of the CTA's R = 4 RW, its lanes walking each row's parts 32 apart
// (unrolled: several 16-byte loads of each lane in flight), reduced by shuffles: no shared
// memory, no barrier, and no idle threads where a row has fewer parts than the CTA threads
// (v3 left half of them idle on rows of 2048 Q4_K columns: 64 parts).
template <class D, class Dot, int RW>
__device__ __forceinline__ void gemv_q8_warp_rows(const uint8_t* wbase, size_t row_bytes,
                                                  int64_t rows, int64_t cols, const Q8Act& x,
                                                  float* y, int64_t row0, bool preload) {
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int64_t r0 = row0 + static_cast<int64_t>(warp) * RW;
  if (r0 >= rows) {
    if (preload) pdl_wait();
    return;
  }
  const int nr = static_cast<int>(min(static_cast<int64_t>(RW), rows - r0));
  const uint8_t* w = wbase + r0 * row_bytes;
  const int num_parts = static_cast<int>(cols / D::kBlockElems) * D::kParts;
  float acc[RW];
#pragma unroll
  for (int r = 0; r < RW; ++r) acc[r] = 0.0f;
  int i = lane;
  if (preload) {
    preload_first_part<D, Dot, RW>(w, row_bytes, i, num_parts, x, acc,
                                   [&](int r) { return r < nr; });
    i += 32;
  }
#pragma unroll 4
  for (; i < num_parts; i += 32) {
    const int blk = i / D::kParts, p = i % D::kParts;
    const int64_t e0 = static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      if (r < nr)
        acc[r] += Dot::dot(w + r * row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p, x, e0);
    }
  }
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && r < nr) y[r0 + r] = v;
  }
}

// R rows a CTA: v3 (kWarps false: the CTA's threads walk the parts of R rows together) or v5.
template <class D, class Dot, int R, bool kWarps>
__device__ __forceinline__ void gemv_q8_cta(const uint8_t* wbase, size_t row_bytes, int64_t rows,
                                            int64_t cols, const Q8Act& x, float* y, int64_t row0,
                                            bool preload) {
  if constexpr (kWarps)
    gemv_q8_warp_rows<D, Dot, R / (kGemvThreads / 32)>(wbase, row_bytes, rows, cols, x, y, row0,
                                                       preload);
  else
    gemv_q8_rows<D, Dot, R>(wbase, row_bytes, rows, cols, x, y, row0, preload);
}

template <class D, class Dot, int R, bool kWarps>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_q8_kernel(const uint8_t* wbase, size_t row_bytes, int64_t rows, int64_t cols, Q8Act x,
                   float* y, int start) {
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const bool pre = preloads(start, std::is_same_v<Dot, DotQ8_0>);
  product_begin(wbase, row_bytes, rows, row0, R, start, pre);
  gemv_q8_cta<D, Dot, R, kWarps>(wbase, row_bytes, rows, cols, x, y, row0, pre);
}

// v12: NT tokens a launch (continuous batching of 2-16 sequences): v3's walk over R rows'
// parts, each part's weights loaded once (Dot::load) and taken against every token
// (Dot::dotw). The tokens past n repeat the last one (their sums are dropped).
template <class D, class Dot, int R, int NT, bool kGroups>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_q8_tokens_kernel(const uint8_t* wbase, size_t row_bytes, int64_t rows, int64_t cols,
                          Q8Act x, int n, float* y) {
  pdl_begin();
  __shared__ float red[kGemvThreads / 32][R * NT];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const uint8_t* w = wbase + row0 * row_bytes;
  const int nr = static_cast<int>(min(static_cast<int64_t>(R), rows - row0));
  const int num_parts = static_cast<int>(cols / D::kBlockElems) * D::kParts;
  Q8Act xt[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const int64_t tt = min(t, n - 1);
    xt[t] = {x.xq + tt * cols / 4, x.xd + tt * cols / 32, x.xs + tt * cols / 16};
  }
  float acc[R][NT] = {};
  const RowGroups rg =
      kGroups ? row_groups(num_parts) : RowGroups{0, 0, static_cast<int>(threadIdx.x)};
  for (int i = rg.first; i < num_parts; i += kGemvThreads) {
    const int blk = i / D::kParts, p = i % D::kParts;
    const int64_t e0 = static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if ((r & rg.mask) != rg.g) continue;
      // rows past the matrix's end read row nr - 1 again (results dropped)
      const uint8_t* b = w + min(r, nr - 1) * row_bytes + static_cast<size_t>(blk) * D::kBlockBytes;
      const typename Dot::W wv = Dot::load(b, p);
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[r][t] += Dot::dotw(wv, p, xt[t], e0);
    }
  }
  cta_reduce_rows<R, NT>(acc, red, nr, n, [&](int r, int t, float v) {
    y[static_cast<int64_t>(t) * rows + row0 + r] = v;
  });
}

// Several weights of one cols in one launch (v4, bench/cuda/NOTES.md): CTAs [cta_begin of
// segment i, cta_begin of i + 1) compute segment i's rows, each with its own format.
struct GemvSeg {
  const uint8_t* w;
  size_t row_bytes;
  int64_t rows;
  float* y;
  DType type;
  unsigned cta_begin;
};
struct GemvSegs {
  GemvSeg seg[kMaxGemvSegments];
  int count;
  int q6k_groups;
  int q4k_elems;
  int start;  // pdl_product_start()
  int64_t cols;
};

template <int R, bool kWarps>
__global__ void __launch_bounds__(kGemvThreads) gemv_q8_multi_kernel(GemvSegs a, Q8Act x) {
  int i = 0;
#pragma unroll
  for (int j = 1; j < static_cast<int>(kMaxGemvSegments); ++j)
    if (j < a.count && blockIdx.x >= a.seg[j].cta_begin) i = j;
  const GemvSeg g = a.seg[i];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x - g.cta_begin) * R;
  const bool pre = preloads(a.start, g.type == DType::kQ8_0);
  product_begin(g.w, g.row_bytes, g.rows, row0, R, a.start, pre);
  switch (g.type) {
    case DType::kQ8_0:
      gemv_q8_cta<DeqQ8_0, DotQ8_0, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y, row0, pre);
      break;
    case DType::kQ4_0:
      gemv_q8_cta<DeqQ4_0, DotQ4_0, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y, row0, pre);
      break;
    case DType::kQ4_K:
      if (a.q4k_elems == 64)
        gemv_q8_cta<PartsQ4_K64, DotQ4_K64, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y,
                                                       row0, pre);
      else
        gemv_q8_cta<DeqQ4_K, DotQ4_K, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y, row0,
                                                 pre);
      break;
    default:
      if (a.q6k_groups == 2)
        gemv_q8_cta<PartsQ6_K2, DotQ6_K2, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y, row0,
                                                     pre);
      else
        gemv_q8_cta<DeqQ6_K, DotQ6_K, R, kWarps>(g.w, g.row_bytes, g.rows, a.cols, x, g.y, row0,
                                                 pre);
      break;
  }
}

// One warp per 32 elements (lane = element): d = amax / 127, q = round-half-even(x / d),
// and the int sums of each 16.
__global__ void quantize_act_q8_kernel(const float* x, int64_t blocks, int8_t* xq, float* xd,
                                       int32_t* xs) {
  pdl_begin();
  const int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (b >= blocks) return;
  q8_store_lane(x[32 * b + lane], b, lane, xq, xd, xs);
}

}  // namespace

bool gemv_q8_supported(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_K || t == DType::kQ6_K;
}

void quantize_act_q8(const float* x, int64_t cols, int8_t* xq, float* xd, int32_t* xs,
                     cudaStream_t s) {
  STRATA_CHECK(cols % 32 == 0);
  const int64_t blocks = cols / 32;
  launch_kernel(quantize_act_q8_kernel, static_cast<unsigned>((blocks + 3) / 4), 128, 0, s, x,
                blocks, xq, xd, xs);
}

namespace {
// 0: by size (bench/cuda sets 2, 4 or 8 to compare; STRATA_CUDA_GEMV_ROWS for whole runs)
int g_gemv_q8_rows = [] {
  const char* v = std::getenv("STRATA_CUDA_GEMV_ROWS");
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n == 2 || n == 4 || n == 8 ? n : 0;
}();
// 0 (default): by shape (below); 5: v5 (a warp per row) everywhere; 3: v3 (the CTA walks R
// rows' parts together) everywhere. STRATA_CUDA_GEMV in the environment, or
// set_gemv_q8_variant (bench), picks one.
int g_gemv_q8_variant = [] {
  const char* v = std::getenv("STRATA_CUDA_GEMV");
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n == 3 || n == 5 ? n : 0;
}();

// Rows per CTA, and through it the kernel (4 and 8 take v5). run 7 (v3): 2 rows a CTA beat 4
// (and 8) on every shape of the Qwen3-8B decode step. Runs 21-24 (bench/cuda/NOTES.md): v5
// (a warp per row, 4 a CTA) everywhere made the Qwen3.6-35B-A3B step 5% faster than v3 (323
// vs 307 tok/s: rows of 2048 columns, where v3 leaves half its threads idle on Q4_K rows, and
// matrices of 2048 rows) and Qwen3-8B 2% slower (287 vs 293; its products have 4096 rows or
// more of 4096 columns or more). Run 33 (cuda_gemv_bench, each product in a graph chain): of
// the 35B-A3B step's products only those of 2048 columns gain from v5; its 2048 x 4096 output
// projections take 3.7 us with v3 at 2 rows a CTA, 4.8 with v5 (Q6_K 5.1 vs 7.1).
// Q6_K groups of 16 a part (kernels.h). Run 40 (cuda_gemv_bench, graph chains): 4096 x
// 12288 21.4 -> 18.8 us, 2048 x 4096 5.06 -> 4.51, 1024 x 4096 4.07 -> 3.41 with 2 groups
// (DotQ6_K2); 4 groups (a part of 64 elements, 4 parts a block) left v3's threads idle:
// 26.0 / 5.84 / 4.19. Run 53 (DotQ6_K4, 4 groups with v3's row groups or v5: no idle
// threads): still slower, 22.5 vs 21.4 (4096 x 12288), 228 vs 198 (the 151936-row head).
int g_q6k_groups = [] {
  const char* v = std::getenv("STRATA_CUDA_Q6K");
  return v != nullptr && std::atoi(v) == 1 ? 1 : 2;
}();

// Elements of a Q4_K part in the batch-1 int8 products: 64 (default, DotQ4_K64) or 32
// (DotQ4_K, before run 51; STRATA_CUDA_Q4K=32), in the batch-1 and expert products. The
// multi-token kernel keeps 32 (runs 55 and 62: the 64-element part was slower there).
int g_q4k_elems = [] {
  const char* v = std::getenv("STRATA_CUDA_Q4K");
  return v != nullptr && std::atoi(v) == 32 ? 32 : 64;
}();

// Run 51 (cuda_gemv_bench, and Qwen3-8B Q4_K_M decode 305-308 -> 344-348 tok/s): with the
// 64-element part, Q4_K products of every shape but the smallest run fastest in v5 (24576 x
// 4096: 22.6 us vs v3 R2 25.2; 4096 x 12288: 12.8 vs 14.7; 4096 x 4096: 5.8 vs 6.7).
int gemv_q8_rows_for(DType type, int64_t rows, int64_t cols) {
  if (g_gemv_q8_rows != 0) return g_gemv_q8_rows;
  if (g_gemv_q8_variant != 0) return g_gemv_q8_variant == 5 ? 4 : 2;
  if (type == DType::kQ4_K && g_q4k_elems == 64) return 4;
  // Runs 48-53: Q6_K output heads (151936 x 4096) 191 us in v5 R4 vs 198 (v3 R2); down
  // projections (4096 x 12288) 18.6-19.6 in v3 R4 vs 19.9-21.4.
  if (type == DType::kQ6_K && (rows >= 32768 || (rows >= 4096 && cols >= 8192))) return 4;
  return cols <= 2048 ? 4 : 2;
}

// At 4 or 8 rows a CTA: v5 (a warp per row), except v3 for the Q6_K down projections above.
bool gemv_q8_warps(DType type, int64_t rows, int64_t cols, int R) {
  if (R < 4 || g_gemv_q8_variant == 3) return false;
  if (g_gemv_q8_variant == 5 || g_gemv_q8_rows != 0) return true;
  return !(type == DType::kQ6_K && rows >= 4096 && rows < 32768 && cols >= 8192);
}

template <class D, class Dot, int R>
void launch_gemv_q8_r(const WeightView& w, const Q8Act& x, float* y, unsigned grid,
                      cudaStream_t s) {
  const auto* wb = static_cast<const uint8_t*>(w.data);
  if constexpr (R >= 4) {
    if (gemv_q8_warps(w.type, w.rows, w.cols, R)) {
      launch_kernel(gemv_q8_kernel<D, Dot, R, true>, grid, kGemvThreads, 0, s, wb, w.row_bytes,
                    w.rows, w.cols, x, y, pdl_product_start());
      return;
    }
  }
  launch_kernel(gemv_q8_kernel<D, Dot, R, false>, grid, kGemvThreads, 0, s, wb, w.row_bytes, w.rows,
                w.cols, x, y, pdl_product_start());
}

template <class D, class Dot>
void launch_gemv_q8(const WeightView& w, const Q8Act& x, float* y, cudaStream_t s) {
  STRATA_CHECK(w.cols % D::kBlockElems == 0);
  const int R = gemv_q8_rows_for(w.type, w.rows, w.cols);
  const auto grid = static_cast<unsigned>((w.rows + R - 1) / R);
  if (R == 8)
    launch_gemv_q8_r<D, Dot, 8>(w, x, y, grid, s);
  else if (R == 4)
    launch_gemv_q8_r<D, Dot, 4>(w, x, y, grid, s);
  else
    launch_gemv_q8_r<D, Dot, 2>(w, x, y, grid, s);
}
}  // namespace

void set_gemv_q8_rows(int rows_per_cta) {
  STRATA_CHECK(rows_per_cta == 0 || rows_per_cta == 2 || rows_per_cta == 4 || rows_per_cta == 8);
  g_gemv_q8_rows = rows_per_cta;
}

void set_gemv_q4k_elems(int elems) {
  STRATA_CHECK(elems == 32 || elems == 64);
  g_q4k_elems = elems;
}

void set_gemv_q6k_groups(int groups) {
  STRATA_CHECK(groups == 1 || groups == 2);
  g_q6k_groups = groups;
}
int gemv_q6k_groups() { return g_q6k_groups; }
int gemv_q4k_elems() { return g_q4k_elems; }

int64_t gemv_q8_row_parts(DType type, int64_t cols) {
  if (type == DType::kQ6_K) return cols / 256 * (16 / g_q6k_groups);
  if (type == DType::kQ4_K) return cols / 256 * (256 / g_q4k_elems);
  int64_t p = 0;
  dispatch_deq(type, [&]<class D>() { p = cols / D::kBlockElems * D::kParts; });
  return p;
}

void set_gemv_q8_variant(int variant) {
  STRATA_CHECK(variant == 0 || variant == 3 || variant == 5);
  g_gemv_q8_variant = variant;
}

void gemv_q8(const WeightView& w, const int8_t* xq, const float* xd, const int32_t* xs, float* y,
             cudaStream_t s) {
  const Q8Act x{reinterpret_cast<const int*>(xq), xd, xs};
  switch (w.type) {
    case DType::kQ8_0:
      launch_gemv_q8<DeqQ8_0, DotQ8_0>(w, x, y, s);
      break;
    case DType::kQ4_0:
      launch_gemv_q8<DeqQ4_0, DotQ4_0>(w, x, y, s);
      break;
    case DType::kQ4_K:
      if (g_q4k_elems == 64)
        launch_gemv_q8<PartsQ4_K64, DotQ4_K64>(w, x, y, s);
      else
        launch_gemv_q8<DeqQ4_K, DotQ4_K>(w, x, y, s);
      break;
    case DType::kQ6_K:
      if (g_q6k_groups == 2)
        launch_gemv_q8<PartsQ6_K2, DotQ6_K2>(w, x, y, s);
      else
        launch_gemv_q8<DeqQ6_K, DotQ6_K>(w, x, y, s);
      break;
    default:
      STRATA_CHECK_MSG(false, "gemv_q8: unsupported type");
  }
}

namespace {
// kGroups8: the launches of 8 tokens take the row-group walk (run 62: for Q4_K the compiler then
// keeps the kernel at 75 registers instead of 209; 8 / 16 sequences 620 / 678 -> 670 / 735 tok/s,
// while 2 / 4 sequences lose with it: 424 -> 392, 565 -> 563).
template <class D, class Dot, bool kGroups8 = false>
void launch_gemv_q8_tokens(const WeightView& w, const Q8Act& x, int64_t n, float* y,
                           cudaStream_t s) {
  constexpr int R = 2;
  const auto grid = static_cast<unsigned>((w.rows + R - 1) / R);
  const auto* wb = static_cast<const uint8_t*>(w.data);
  for (int64_t t0 = 0; t0 < n; t0 += 8) {
    const int nt = static_cast<int>(std::min<int64_t>(8, n - t0));
    const Q8Act xg{x.xq + t0 * w.cols / 4, x.xd + t0 * w.cols / 32, x.xs + t0 * w.cols / 16};
    float* yg = y + t0 * w.rows;
    auto* k = nt <= 2   ? gemv_q8_tokens_kernel<D, Dot, R, 2, false>
              : nt <= 4 ? gemv_q8_tokens_kernel<D, Dot, R, 4, false>
                        : gemv_q8_tokens_kernel<D, Dot, R, 8, kGroups8>;
    launch_kernel(k, grid, kGemvThreads, 0, s, wb, w.row_bytes, w.rows, w.cols, xg, nt, yg);
  }
}
}  // namespace

void gemv_q8_tokens(const WeightView& w, const Q8Buf& xb, int64_t n, float* y, cudaStream_t s) {
  STRATA_CHECK(n >= 1 && w.cols % 32 == 0);
  const Q8Act x{reinterpret_cast<const int*>(xb.xq), xb.xd, xb.xs};
  switch (w.type) {
    case DType::kQ8_0:
      launch_gemv_q8_tokens<DeqQ8_0, DotQ8_0>(w, x, n, y, s);
      break;
    case DType::kQ4_0:
      launch_gemv_q8_tokens<DeqQ4_0, DotQ4_0>(w, x, n, y, s);
      break;
    case DType::kQ4_K:
      // The 32-element part: the 64-element one at 4 rows a CTA in row groups (v16, run 62) ran 2
      // / 4 / 8 / 16 sequences at 389 / 507 / 585 / 633 tok/s against 425 / 566 / 670 / 735.
      launch_gemv_q8_tokens<DeqQ4_K, DotQ4_K, true>(w, x, n, y, s);
      break;
    case DType::kQ6_K:
      launch_gemv_q8_tokens<PartsQ6_K2, DotQ6_K2>(w, x, n, y, s);
      break;
    default:
      STRATA_CHECK_MSG(false, "gemv_q8_tokens: unsupported type");
  }
}

void gemv_q8_multi(const WeightView* ws, float* const* ys, int count, const Q8Buf& xb,
                   cudaStream_t s) {
  STRATA_CHECK(count >= 1 && count <= static_cast<int>(kMaxGemvSegments));
  if (count == 1) {
    gemv_q8(ws[0], xb.xq, xb.xd, xb.xs, ys[0], s);
    return;
  }
  GemvSegs a{};
  a.count = count;
  a.q6k_groups = g_q6k_groups;
  a.q4k_elems = g_q4k_elems;
  a.start = pdl_product_start();
  a.cols = ws[0].cols;
  int64_t total_rows = 0;
  int largest = 0;
  for (int i = 0; i < count; ++i) {
    total_rows += ws[i].rows;
    if (ws[i].rows > ws[largest].rows) largest = i;
  }
  // Rows per CTA as gemv_q8 picks them for one matrix of all the rows, of the largest's type.
  const int R = gemv_q8_rows_for(ws[largest].type, total_rows, a.cols);
  unsigned ctas = 0;
  for (int i = 0; i < count; ++i) {
    const WeightView& w = ws[i];
    STRATA_CHECK(gemv_q8_supported(w.type) && w.cols == a.cols &&
                 w.cols % native_block_elems(w.type) == 0);
    a.seg[i] = {static_cast<const uint8_t*>(w.data), w.row_bytes, w.rows, ys[i], w.type, ctas};
    ctas += static_cast<unsigned>((w.rows + R - 1) / R);
  }
  const Q8Act x{reinterpret_cast<const int*>(xb.xq), xb.xd, xb.xs};
  const bool warps = g_gemv_q8_variant != 3 && R >= 4;
  auto* k = R == 8 && warps   ? gemv_q8_multi_kernel<8, true>
            : R == 4 && warps ? gemv_q8_multi_kernel<4, true>
            : R == 8          ? gemv_q8_multi_kernel<8, false>
            : R == 4          ? gemv_q8_multi_kernel<4, false>
                              : gemv_q8_multi_kernel<2, false>;
  launch_kernel(k, ctas, kGemvThreads, 0, s, a, x);
}

}  // namespace strata::backend::cuda
