// Weight kernels: float matrix-vector products of few tokens (v2), dequantize-to-bf16 (the
// prefill path feeds the result to cuBLAS), embedding rows, the MoE prefill's gather and
// scatter. All decode through dequant.cuh. The int8 products are in gemv_int8.cu.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s:%d: CUDA error %s (%s) in %s\n", file, line, cudaGetErrorName(e),
               cudaGetErrorString(e), what);
  std::abort();
}

int native_block_elems(DType type) {
  int e = 0;
  dispatch_deq(type, [&]<class D>() { e = D::kBlockElems; });
  return e;
}

bool native_type(DType type) { return native_block_elems(type) != 0; }

namespace {
int g_pdl_mode = [] {
  const char* v = std::getenv("STRATA_CUDA_PDL");
  const int n = v != nullptr ? std::atoi(v) : 1;
  return n >= 0 && n <= 5 ? n : 1;
}();
}  // namespace
int pdl_mode() { return g_pdl_mode; }
void set_pdl_mode(int mode) {
  STRATA_CHECK(mode >= 0 && mode <= 5);
  g_pdl_mode = mode;
}

namespace {

struct GemvArgs {
  const uint8_t* w;
  size_t row_bytes, expert_bytes;
  int64_t rows, cols;
  const float* x;
  int64_t n;
  float* y;
  const int32_t* ids;  // experts: [n*k] or nullptr
  int k;
  bool x_per_slot;
};

// v2 (bench/cuda/NOTES.md): a CTA computes R rows for NT tokens; all 128 threads walk the
// parts of the rows (consecutive threads, consecutive bytes), each x chunk loaded once and
// used for R rows; warp shuffles, then shared memory, reduce.
// blockIdx.y: a group of NT tokens (dense) or one expert slot (ids != nullptr, NT == 1).
template <class D, int NT, int R>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(GemvArgs a) {
  pdl_begin();
  __shared__ float red[kGemvThreads / 32][R * NT];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const uint8_t* w = a.w + row0 * a.row_bytes;
  const float* x;
  float* y;
  int nt = NT;
  if (a.ids != nullptr) {
    const int64_t slot = blockIdx.y;
    w += static_cast<size_t>(a.ids[slot]) * a.expert_bytes;
    x = a.x + (a.x_per_slot ? slot : slot / a.k) * a.cols;
    y = a.y + slot * a.rows;
    nt = 1;
  } else {
    const int64_t t0 = static_cast<int64_t>(blockIdx.y) * NT;
    x = a.x + t0 * a.cols;
    y = a.y + t0 * a.rows;
    nt = static_cast<int>(min(static_cast<int64_t>(NT), a.n - t0));
  }
  const int nr = static_cast<int>(min(static_cast<int64_t>(R), a.rows - row0));
  const int num_parts = static_cast<int>(a.cols / D::kBlockElems) * D::kParts;
  float acc[R][NT] = {};
  for (int i = tid; i < num_parts; i += kGemvThreads) {
    const int blk = i / D::kParts, p = i % D::kParts;
    float v[R][D::kRuns * D::kRun];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r < nr) D::part(w + r * a.row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p, v[r]);
    }
#pragma unroll
    for (int run = 0; run < D::kRuns; ++run) {
      const int64_t e = static_cast<int64_t>(blk) * D::kBlockElems + D::run_start(p, run);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t < nt) {
          const float4* xv = reinterpret_cast<const float4*>(x + t * a.cols + e);
#pragma unroll
          for (int j = 0; j < D::kRun / 4; ++j) {
            const float4 xx = __ldg(xv + j);
#pragma unroll
            for (int r = 0; r < R; ++r) {
              const float* vv = v[r] + run * D::kRun + 4 * j;
              acc[r][t] += vv[0] * xx.x + vv[1] * xx.y + vv[2] * xx.z + vv[3] * xx.w;
            }
          }
        }
      }
    }
  }
  cta_reduce_rows<R, NT>(acc, red, nr, nt,
                         [&](int r, int t, float v) { y[t * a.rows + row0 + r] = v; });
}

template <class D, int NT, int R>
void launch_gemv_r(const GemvArgs& a, unsigned grid_y, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((a.rows + R - 1) / R), grid_y);
  launch_kernel(gemv_kernel<D, NT, R>, grid, kGemvThreads, 0, s, a);
}

// Rows per CTA: 4 for one token (x reuse), fewer where registers hold NT tokens' sums, and
// 2 for short matrices so that the grid still fills the chip.
template <class D>
void launch_gemv(const GemvArgs& a, unsigned grid_y, int nt, cudaStream_t s) {
  switch (nt) {
    case 1:
      if (a.rows >= 4096)
        launch_gemv_r<D, 1, 4>(a, grid_y, s);
      else
        launch_gemv_r<D, 1, 2>(a, grid_y, s);
      break;
    case 2:
      launch_gemv_r<D, 2, 2>(a, grid_y, s);
      break;
    case 4:
      launch_gemv_r<D, 4, 1>(a, grid_y, s);
      break;
    default:
      launch_gemv_r<D, 8, 1>(a, grid_y, s);
      break;
  }
}

GemvArgs gemv_args(const WeightView& w, const float* x, int64_t n, float* y) {
  GemvArgs a{};
  a.w = static_cast<const uint8_t*>(w.data);
  a.row_bytes = w.row_bytes;
  a.expert_bytes = w.expert_bytes;
  a.rows = w.rows;
  a.cols = w.cols;
  a.x = x;
  a.n = n;
  a.y = y;
  return a;
}

// One thread per (row, part): decode and store kRuns*kRun values.
template <class D, class Out>
__global__ void dequant_kernel(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols,
                               const int32_t* ids, Out* out) {
  pdl_begin();
  const int64_t parts_per_row = cols / D::kBlockElems * D::kParts;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * parts_per_row) return;
  const int64_t r = idx / parts_per_row;
  const int i = static_cast<int>(idx % parts_per_row);
  const int blk = i / D::kParts, p = i % D::kParts;
  const int64_t src_row = ids != nullptr ? ids[r] : r;
  float v[D::kRuns * D::kRun];
  D::part(w + src_row * row_bytes + static_cast<size_t>(blk) * D::kBlockBytes, p, v);
  Out* o = out + r * cols + static_cast<int64_t>(blk) * D::kBlockElems;
#pragma unroll
  for (int run = 0; run < D::kRuns; ++run) {
    Out* dst = o + D::run_start(p, run);
    const float* src = v + run * D::kRun;
    if constexpr (sizeof(Out) == 2 && D::kRun % 8 == 0) {
      // 16-byte stores: 8 bf16 at a time (runs start at multiples of 8 elements).
#pragma unroll
      for (int j = 0; j < D::kRun; j += 8) {
        uint4 u;
        uint32_t* pu = reinterpret_cast<uint32_t*>(&u);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const __nv_bfloat162 b2 = __floats2bfloat162_rn(src[j + 2 * q], src[j + 2 * q + 1]);
          pu[q] = *reinterpret_cast<const uint32_t*>(&b2);
        }
        *reinterpret_cast<uint4*>(dst + j) = u;
      }
    } else {
#pragma unroll
      for (int j = 0; j < D::kRun; ++j) {
        if constexpr (sizeof(Out) == 2)
          dst[j] = __float2bfloat16_rn(src[j]);
        else
          dst[j] = src[j];
      }
    }
  }
}

template <class Out>
void launch_dequant(const WeightView& w, int64_t rows, const int32_t* ids, Out* out,
                    cudaStream_t s) {
  const bool ok = dispatch_deq(w.type, [&]<class D>() {
    STRATA_CHECK(w.cols % D::kBlockElems == 0);
    const int64_t total = rows * (w.cols / D::kBlockElems) * D::kParts;
    if (total == 0) return;
    const int threads = 256;
    launch_kernel(dequant_kernel<D, Out>, static_cast<unsigned>((total + threads - 1) / threads),
                  threads, 0, s, static_cast<const uint8_t*>(w.data), w.row_bytes, rows, w.cols,
                  ids, out);
  });
  STRATA_CHECK_MSG(ok, "weight type not uploaded for the CUDA backend");
}

__global__ void f32_to_bf16_kernel(const float* x, size_t count, __nv_bfloat16* out) {
  pdl_begin();
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(x[i]);
}

// MoE prefill: slot rows grouped by expert, each group padded to max_count rows (zeros).
__global__ void moe_gather_kernel(const float* x, int64_t cols, bool x_per_slot, int k,
                                  const int32_t* order, const int32_t* offsets, int64_t max_count,
                                  __nv_bfloat16* xb) {
  pdl_begin();
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int e = static_cast<int>(blockIdx.z);
  const int64_t i = blockIdx.y;
  const int32_t beg = offsets[e], cnt = offsets[e + 1] - beg;
  float v = 0.0f;
  if (i < cnt) {
    const int64_t slot = order[beg + i];
    v = x[(x_per_slot ? slot : slot / k) * cols + c];
  }
  xb[(static_cast<int64_t>(e) * max_count + i) * cols + c] = __float2bfloat16_rn(v);
}

__global__ void moe_scatter_kernel(const float* yb, int64_t rows, const int32_t* order,
                                   const int32_t* offsets, int64_t max_count, float* y) {
  pdl_begin();
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int e = static_cast<int>(blockIdx.z);
  const int64_t i = blockIdx.y;
  const int32_t beg = offsets[e], cnt = offsets[e + 1] - beg;
  if (i >= cnt) return;
  y[static_cast<int64_t>(order[beg + i]) * rows + r] = yb[(static_cast<int64_t>(e) * max_count + i) * rows + r];
}

}  // namespace

void moe_gather_bf16(const float* x, int64_t cols, bool x_per_slot, int k, const int32_t* order,
                     const int32_t* offsets, int experts, int64_t max_count, __nv_bfloat16* xb,
                     cudaStream_t s) {
  if (max_count == 0) return;
  const dim3 grid(static_cast<unsigned>((cols + 255) / 256), static_cast<unsigned>(max_count),
                  static_cast<unsigned>(experts));
  launch_kernel(moe_gather_kernel, grid, 256, 0, s, x, cols, x_per_slot, k, order, offsets,
                max_count, xb);
}

void moe_scatter(const float* yb, int64_t rows, const int32_t* order, const int32_t* offsets,
                 int experts, int64_t max_count, float* y, cudaStream_t s) {
  if (max_count == 0) return;
  const dim3 grid(static_cast<unsigned>((rows + 255) / 256), static_cast<unsigned>(max_count),
                  static_cast<unsigned>(experts));
  launch_kernel(moe_scatter_kernel, grid, 256, 0, s, yb, rows, order, offsets, max_count, y);
}

namespace {
// One token's product with an F32 weight (the MoE router, the shared expert's gate): a warp
// a row, float4 loads, several in flight a lane (v1 for this case: the float GEMV, 2 rows a
// CTA, 128 CTAs for a 256-expert router: ~400 GB/s).
__global__ void __launch_bounds__(128) gemv_f32_rows_kernel(const float* w, int64_t rows,
                                                            int64_t cols, const float* x, float* y) {
  pdl_begin();
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * 4 + threadIdx.x / 32;
  if (r >= rows) return;
  const float4* wr = reinterpret_cast<const float4*>(w + r * cols);
  const float4* xv = reinterpret_cast<const float4*>(x);
  float acc = 0.0f;
  // All of a lane's loads of a 2048-column row in flight at once (16 float4).
#pragma unroll 16
  for (int64_t i = lane; i < cols / 4; i += 32) {
    const float4 a = __ldcs(wr + i), b = __ldg(xv + i);
    acc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[r] = acc;
}
}  // namespace

void gemv(const WeightView& w, const float* x, int64_t n, float* y, cudaStream_t s) {
  // STRATA_CUDA_F32_ROWS=0: the float GEMV for these too (A/B).
  static const bool f32_rows = std::getenv("STRATA_CUDA_F32_ROWS") == nullptr ||
                               std::atoi(std::getenv("STRATA_CUDA_F32_ROWS")) != 0;
  if (f32_rows && n == 1 && w.type == DType::kF32 && w.row_bytes == static_cast<size_t>(w.cols) * 4 &&
      w.cols % 4 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    launch_kernel(gemv_f32_rows_kernel, static_cast<unsigned>((w.rows + 3) / 4), 128, 0, s,
                  static_cast<const float*>(w.data), w.rows, w.cols, x, y);
    return;
  }
  const GemvArgs a = gemv_args(w, x, n, y);
  const int nt = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
  const bool ok = dispatch_deq(w.type, [&]<class D>() {
    STRATA_CHECK(w.cols % D::kBlockElems == 0);
    launch_gemv<D>(a, static_cast<unsigned>((n + nt - 1) / nt), nt, s);
  });
  STRATA_CHECK_MSG(ok, "weight type not uploaded for the CUDA backend");
}

void gemv_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                  int64_t n, int k, float* y, cudaStream_t s) {
  GemvArgs a = gemv_args(w, x, n, y);
  a.ids = ids;
  a.k = k;
  a.x_per_slot = x_per_slot;
  const bool ok = dispatch_deq(w.type, [&]<class D>() {
    STRATA_CHECK(w.cols % D::kBlockElems == 0);
    launch_gemv<D>(a, static_cast<unsigned>(n * k), 1, s);
  });
  STRATA_CHECK_MSG(ok, "weight type not uploaded for the CUDA backend");
}

void dequantize_bf16(const WeightView& w, __nv_bfloat16* out, cudaStream_t s) {
  launch_dequant(w, w.rows, nullptr, out, s);
}

void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out, cudaStream_t s) {
  launch_dequant(w, n, ids, out, s);
}

void f32_to_bf16(const float* x, size_t count, __nv_bfloat16* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(f32_to_bf16_kernel, static_cast<unsigned>((count + 255) / 256), 256, 0, s, x, count,
                out);
}

}  // namespace strata::backend::cuda
