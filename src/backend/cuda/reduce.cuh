// Reductions shared by the CUDA kernels.
#pragma once

namespace strata::backend::cuda {

// The sum of v over the CTA (every thread gets it): warp shuffles, then the warps' sums
// through smem (at least blockDim.x / 32 floats). Every thread of the CTA must call it.
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
