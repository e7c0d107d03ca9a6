// Weight kernels: quantized matrix-vector products (decode), dequantize-to-bf16 (the prefill
// path feeds the result to cuBLAS), embedding rows. All decode through dequant.cuh.
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/kernels.h"
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

constexpr int kGemvWarps = 4;  // rows per CTA: one warp per output row

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

// One warp per output row; lanes walk the row's parts (consecutive lanes, consecutive bytes).
// blockIdx.y: a group of NT tokens (dense) or one expert slot (ids != nullptr, NT == 1).
template <class D, int NT>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(GemvArgs a) {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
  if (row >= a.rows) return;
  const uint8_t* w = a.w + row * a.row_bytes;
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
  const int num_parts = static_cast<int>(a.cols / D::kBlockElems) * D::kParts;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
#pragma unroll 2
  for (int i = lane; i < num_parts; i += 32) {
    const int blk = i / D::kParts, p = i % D::kParts;
    float v[D::kRuns * D::kRun];
    D::part(w + static_cast<size_t>(blk) * D::kBlockBytes, p, v);
#pragma unroll
    for (int r = 0; r < D::kRuns; ++r) {
      const int64_t e = static_cast<int64_t>(blk) * D::kBlockElems + D::run_start(p, r);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t < nt) {
          const float4* xv = reinterpret_cast<const float4*>(x + t * a.cols + e);
#pragma unroll
          for (int j = 0; j < D::kRun / 4; ++j) {
            const float4 xx = __ldg(xv + j);
            const float* vv = v + r * D::kRun + 4 * j;
            acc[t] += vv[0] * xx.x + vv[1] * xx.y + vv[2] * xx.z + vv[3] * xx.w;
          }
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float s = acc[t];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0 && t < nt) y[t * a.rows + row] = s;
  }
}

template <class D>
void launch_gemv(const GemvArgs& a, unsigned grid_y, int nt, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((a.rows + kGemvWarps - 1) / kGemvWarps), grid_y);
  switch (nt) {
    case 1: gemv_kernel<D, 1><<<grid, kGemvWarps * 32, 0, s>>>(a); break;
    case 2: gemv_kernel<D, 2><<<grid, kGemvWarps * 32, 0, s>>>(a); break;
    case 4: gemv_kernel<D, 4><<<grid, kGemvWarps * 32, 0, s>>>(a); break;
    default: gemv_kernel<D, 8><<<grid, kGemvWarps * 32, 0, s>>>(a); break;
  }
  STRATA_CUDA_LAUNCH_CHECK();
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
#pragma unroll
    for (int j = 0; j < D::kRun; ++j) {
      if constexpr (sizeof(Out) == 2) {
        o[D::run_start(p, run) + j] = __float2bfloat16_rn(v[run * D::kRun + j]);
      } else {
        o[D::run_start(p, run) + j] = v[run * D::kRun + j];
      }
    }
  }
}

template <class Out>
void launch_dequant(const WeightView& w, int64_t rows, const int32_t* ids, Out* out, cudaStream_t s) {
  const bool ok = dispatch_deq(w.type, [&]<class D>() {
    STRATA_CHECK(w.cols % D::kBlockElems == 0);
    const int64_t total = rows * (w.cols / D::kBlockElems) * D::kParts;
    if (total == 0) return;
    const int threads = 256;
    dequant_kernel<D, Out><<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, s>>>(
        static_cast<const uint8_t*>(w.data), w.row_bytes, rows, w.cols, ids, out);
    STRATA_CUDA_LAUNCH_CHECK();
  });
  STRATA_CHECK_MSG(ok, "weight type not uploaded for the CUDA backend");
}

__global__ void f32_to_bf16_kernel(const float* x, size_t count, __nv_bfloat16* out) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

void gemv(const WeightView& w, const float* x, int64_t n, float* y, cudaStream_t s) {
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
  f32_to_bf16_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, s>>>(x, count, out);
  STRATA_CUDA_LAUNCH_CHECK();
}

}  // namespace strata::backend::cuda
