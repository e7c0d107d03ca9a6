// Device-side decoding of the GGUF block formats the CUDA kernels compute with directly.
// Each format splits a block into kParts parts (one thread's unit of work); a part decodes
// to kRuns runs of kRun consecutive elements, run r starting at element run_start(p, r) of
// the block. Layouts: core/quant_blocks.h (the scalar twins are core/quant.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"

namespace strata::backend::cuda {

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf2f(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}
// Weights are streamed once per token: evict-first loads keep L1/L2 for the activations.
__device__ __forceinline__ uint16_t ld_u16(const uint8_t* p) {
  return __ldcs(reinterpret_cast<const unsigned short*>(p));
}
__device__ __forceinline__ uint32_t ld_u32(const uint8_t* p) {
  return __ldcs(reinterpret_cast<const unsigned int*>(p));
}
__device__ __forceinline__ uint4 ld_u128(const uint8_t* p) {
  return __ldcs(reinterpret_cast<const uint4*>(p));
}
// 16 bytes from a 2-byte aligned address: five aligned words, funnel-shifted. May read up to
// 4 bytes past p + 16 (upload_weight pads every weight allocation).
__device__ __forceinline__ void ld16_u2(const uint8_t* p, uint32_t out[4]) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  const auto* al = reinterpret_cast<const unsigned int*>(addr & ~uintptr_t{3});
  const unsigned sh = static_cast<unsigned>(addr & 3) * 8;
  uint32_t w[5];
#pragma unroll
  for (int i = 0; i < 5; ++i) w[i] = __ldcs(al + i);
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = __funnelshift_r(w[i], w[i + 1], sh);
}
__device__ __forceinline__ int byte_s8(const uint32_t* w, int j) {
  return static_cast<int8_t>((w[j / 4] >> (8 * (j % 4))) & 0xFF);
}
__device__ __forceinline__ int byte_u8(const uint32_t* w, int j) {
  return (w[j / 4] >> (8 * (j % 4))) & 0xFF;
}

// 4 plain f32 (16 bytes).
struct DeqF32 {
  static constexpr int kBlockElems = 4, kBlockBytes = 16, kParts = 1, kRuns = 1, kRun = 4;
  __device__ static int run_start(int, int) { return 0; }
  __device__ static void part(const uint8_t* b, int, float* v) {
    const float4 a = __ldcs(reinterpret_cast<const float4*>(b));
    v[0] = a.x;
    v[1] = a.y;
    v[2] = a.z;
    v[3] = a.w;
  }
};

// 8 halves (16 bytes); Bf is f16 or bf16.
template <bool kBf16>
struct DeqHalf {
  static constexpr int kBlockElems = 8, kBlockBytes = 16, kParts = 1, kRuns = 1, kRun = 8;
  __device__ static int run_start(int, int) { return 0; }
  __device__ static void part(const uint8_t* b, int, float* v) {
    const uint4 u = ld_u128(b);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const auto lo = static_cast<uint16_t>(w[i] & 0xFFFF), hi = static_cast<uint16_t>(w[i] >> 16);
      v[2 * i] = kBf16 ? bf2f(lo) : h2f(lo);
      v[2 * i + 1] = kBf16 ? bf2f(hi) : h2f(hi);
    }
  }
};
using DeqF16 = DeqHalf<false>;
using DeqBF16 = DeqHalf<true>;

// Q8_0: 34-byte blocks (2-byte aligned only), two parts of 16.
struct DeqQ8_0 {
  static constexpr int kBlockElems = 32, kBlockBytes = 34, kParts = 2, kRuns = 1, kRun = 16;
  __device__ static int run_start(int p, int) { return 16 * p; }
  __device__ static void part(const uint8_t* b, int p, float* v) {
    const float d = h2f(ld_u16(b));
    uint32_t w[4];
    ld16_u2(b + 2 + 16 * p, w);
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = d * static_cast<float>(byte_s8(w, i));
  }
};

// Q4_0: 18-byte blocks, one part: low nibbles are elements 0..15, high nibbles 16..31.
struct DeqQ4_0 {
  static constexpr int kBlockElems = 32, kBlockBytes = 18, kParts = 1, kRuns = 2, kRun = 16;
  __device__ static int run_start(int, int r) { return 16 * r; }
  __device__ static void part(const uint8_t* b, int, float* v) {
    const float d = h2f(ld_u16(b));
    uint32_t w[4];
    ld16_u2(b + 2, w);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int q = byte_u8(w, i);
      v[i] = d * static_cast<float>((q & 0xF) - 8);
      v[16 + i] = d * static_cast<float>((q >> 4) - 8);
    }
  }
};

// Q4_K: 144-byte super-blocks (16-byte aligned), 8 parts: part p reads 16 bytes of qs at
// 32c + 16h (c = p/2, h = p%2): low nibbles are elements 64c + 16h + i (group 2c), high
// nibbles 64c + 32 + 16h + i (group 2c + 1).
struct DeqQ4_K {
  static constexpr int kBlockElems = 256, kBlockBytes = 144, kParts = 8, kRuns = 2, kRun = 16;
  __device__ static int run_start(int p, int r) { return 64 * (p / 2) + 32 * r + 16 * (p % 2); }
  __device__ static void scale_min(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
      *sc = s[j] & 63;
      *m = s[j + 4] & 63;
    } else {
      *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
      *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
  }
  __device__ static void part(const uint8_t* b, int p, float* v) {
    const int c = p / 2;
    const uint32_t dd = ld_u32(b);
    const float d = h2f(static_cast<uint16_t>(dd & 0xFFFF)),
                dmin = h2f(static_cast<uint16_t>(dd >> 16));
    int sc0, m0, sc1, m1;  // scale bytes: L1 hits for the block's other parts
    scale_min(b + 4, 2 * c, &sc0, &m0);
    scale_min(b + 4, 2 * c + 1, &sc1, &m1);
    const float d0 = d * static_cast<float>(sc0), o0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), o1 = dmin * static_cast<float>(m1);
    const uint4 u = ld_u128(b + 16 + 32 * c + 16 * (p % 2));
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint32_t q = (w[i / 4] >> (8 * (i % 4))) & 0xFF;
      v[i] = d0 * static_cast<float>(q & 0xF) - o0;
      v[16 + i] = d1 * static_cast<float>(q >> 4) - o1;
    }
  }
};

// Q6_K: 210-byte super-blocks (2-byte aligned), 16 parts, one per group g of 16: h = g/8,
// s = (g%8)/2, l0 = 16 (g%2); element 128h + 32s + l0 + i.
struct DeqQ6_K {
  static constexpr int kBlockElems = 256, kBlockBytes = 210, kParts = 16, kRuns = 1, kRun = 16;
  __device__ static int run_start(int g, int) {
    return 128 * (g / 8) + 32 * ((g % 8) / 2) + 16 * (g % 2);
  }
  __device__ static void part(const uint8_t* b, int g, float* v) {
    const int h = g / 8, s = (g % 8) / 2, l0 = 16 * (g % 2);
    const uint8_t* ql = b + 64 * h + 32 * (s & 1) + l0;
    const uint8_t* qh = b + 128 + 32 * h + l0;
    const float d =
        h2f(ld_u16(b + 208)) *
        static_cast<float>(static_cast<int8_t>(__ldcs(reinterpret_cast<const char*>(b) + 192 + g)));
    const int lshift = s >= 2 ? 4 : 0, hshift = 2 * s;
    uint32_t lw[4], hw[4];
    ld16_u2(ql, lw);
    ld16_u2(qh, hw);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int q = ((byte_u8(lw, i) >> lshift) & 0xF) | (((byte_u8(hw, i) >> hshift) & 3) << 4);
      v[i] = d * static_cast<float>(q - 32);
    }
  }
};

// Calls f.template operator()<Deq>() for a natively supported type; returns false otherwise.
template <class F>
bool dispatch_deq(DType t, F&& f) {
  switch (t) {
    case DType::kF32:
      f.template operator()<DeqF32>();
      return true;
    case DType::kF16:
      f.template operator()<DeqF16>();
      return true;
    case DType::kBF16:
      f.template operator()<DeqBF16>();
      return true;
    case DType::kQ8_0:
      f.template operator()<DeqQ8_0>();
      return true;
    case DType::kQ4_0:
      f.template operator()<DeqQ4_0>();
      return true;
    case DType::kQ4_K:
      f.template operator()<DeqQ4_K>();
      return true;
    case DType::kQ6_K:
      f.template operator()<DeqQ6_K>();
      return true;
    default:
      return false;
  }
}

}  // namespace strata::backend::cuda
