// CTA-wide reductions shared by the small kernels (ops.cu, decode_fused.cu).
#pragma once

namespace strata::backend::cuda {

// The sum of v over the CTA (blockDim.x a multiple of 32, at most 1024), returned to every
// thread; smem holds 32 floats. Two barriers: callers may reuse smem right after.
__device__ __forceinline__ float block_sum(float v, float* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float t = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x) / 32; ++i) t += smem[i];
  __syncthreads();
  return t;
}

}  // namespace strata::backend::cuda
