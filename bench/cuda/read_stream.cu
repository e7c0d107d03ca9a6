// The ceiling a batch-1 product of a given size can reach inside a graph chain: kernels that
// only read the bytes (evict-first 16-byte loads, an xor of them kept), in two shapes.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace strata::bench {
namespace {

// Variant 0: one CTA of 256 threads a 32 KB chunk, eight loads a thread issued together (the
// shape of the products: many short CTAs).
__global__ void __launch_bounds__(256)
    read_chunks_kernel(const uint4* p, size_t n, unsigned* sink) {
  const size_t base = static_cast<size_t>(blockIdx.x) * 2048 + threadIdx.x;
  uint4 v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
    v[i] = base + 256 * i < n ? __ldcs(p + base + 256 * i) : make_uint4(0, 0, 0, 0);
  unsigned x = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) x ^= v[i].x ^ v[i].y ^ v[i].z ^ v[i].w;
  if (x == 0x9e3779b9u) *sink = x;
}

// Variant 1: a resident grid (8 CTAs of 256 an SM) striding over the bytes, four loads in flight.
__global__ void __launch_bounds__(256) read_grid_kernel(const uint4* p, size_t n, unsigned* sink) {
  const size_t stride = static_cast<size_t>(gridDim.x) * 256;
  unsigned x = 0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * 256 + threadIdx.x; i < n; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      v[j] = i + j * stride < n ? __ldcs(p + i + j * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < 4; ++j) x ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
  }
  if (x == 0x9e3779b9u) *sink = x;
}

}  // namespace

void read_stream(const void* p, size_t bytes, int variant, unsigned* sink, int sms,
                 cudaStream_t s) {
  const size_t n = bytes / 16;
  if (variant == 0)
    read_chunks_kernel<<<static_cast<unsigned>((n + 2047) / 2048), 256, 0, s>>>(
        static_cast<const uint4*>(p), n, sink);
  else
    read_grid_kernel<<<static_cast<unsigned>(8 * sms), 256, 0, s>>>(static_cast<const uint4*>(p), n,
                                                                    sink);
}

}  // namespace strata::bench
