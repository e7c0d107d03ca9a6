// Batch-1 decode products on int8 activations (v3, bench/cuda/NOTES.md): x is quantized per
// 32 elements to int8 (scale xd, plus the int sums of each 16) and the weights' integer
// codes meet it in __dp4a, 4 products per instruction. The float-dequantize path (v2) issues
// ~8 instructions per weight and is instruction-bound at ~30-50% of the copy bandwidth; this
// one issues under 1. Precision: x rounded to 8 bits per block (~0.5% rms of a product), as
// the CPU backend's fast path does.
#pragma once

#include "backend/cuda/dequant.cuh"

namespace strata::backend::cuda {

constexpr int kGemvThreads = 128;  // a CTA of the matrix-vector kernels (float and int8): 4 warps

// x of one token: xq [cols] int8 (read as int words), xd [cols/32] f32, xs [cols/16] int.
struct Q8Act {
  const int* xq;
  const float* xd;
  const int* xs;
};

__device__ __forceinline__ int dp4a(int a, int b, int c) { return __dp4a(a, b, c); }

// The sums of R rows x NT tokens over a CTA's threads (acc: each thread's share): warp
// shuffles, then shared memory; write(r, t, sum) for r < nr, t < nt.
template <int R, int NT, class Write>
__device__ __forceinline__ void cta_reduce_rows(float (&acc)[R][NT],
                                                float (&red)[kGemvThreads / 32][R * NT], int nr,
                                                int nt, Write write) {
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) red[warp][r * NT + t] = v;
    }
  }
  __syncthreads();
  for (int j = tid; j < R * NT; j += kGemvThreads) {
    const int r = j / NT, t = j % NT;
    if (r >= nr || t >= nt) continue;
    float v = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kGemvThreads / 32; ++wi) v += red[wi][j];
    write(r, t, v);
  }
}

// One warp quantizes 32 elements (lane = element 32 b + lane, value v): d = amax / 127,
// q = round-half-even(v / d), and the int sums of each 16. Shared by the quantize kernel and
// the kernels that quantize their output on the way out (RMSNorm, SwiGLU).
__device__ __forceinline__ void q8_store_lane(float v, int64_t b, int lane, int8_t* xq, float* xd,
                                              int32_t* xs) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const int q = max(-127, min(127, __float2int_rn(v * id)));
  xq[32 * b + lane] = static_cast<int8_t>(q);
  int s = q;
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);  // sums within each 16
  if (lane == 0) xd[b] = d;
  if (lane % 16 == 0) xs[2 * b + lane / 16] = s;
}

// Sum over part p of block b (first element e0) of w * x, for each supported format, in two
// steps: load(b, p) brings the part's weight words and scales into registers, dotw() takes
// them against one token's x. The multi-token kernel loads once and calls dotw per token.
template <class Dot>
__device__ __forceinline__ float part_dot(const uint8_t* b, int p, const Q8Act& x, int64_t e0) {
  return Dot::dotw(Dot::load(b, p), p, x, e0);
}

struct DotQ8_0 {
  struct W {
    uint32_t w[4];
    float d;
  };
  __device__ static W load(const uint8_t* b, int p) {
    W r;
    ld16_u2(b + 2 + 16 * p, r.w);
    r.d = h2f(ld_u16(b));
    return r;
  }
  __device__ static float dotw(const W& w, int p, const Q8Act& x, int64_t e0) {
    const int4 xv = __ldg(reinterpret_cast<const int4*>(x.xq + (e0 + 16 * p) / 4));
    const int xs[4] = {xv.x, xv.y, xv.z, xv.w};
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) s = dp4a(static_cast<int>(w.w[i]), xs[i], s);
    return w.d * __ldg(x.xd + e0 / 32) * static_cast<float>(s);
  }
  __device__ static float dot(const uint8_t* b, int p, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ8_0>(b, p, x, e0);
  }
};

struct DotQ4_0 {
  struct W {
    uint32_t w[4];
    float d;
  };
  __device__ static W load(const uint8_t* b, int) {
    W r;
    ld16_u2(b + 2, r.w);
    r.d = h2f(ld_u16(b));
    return r;
  }
  __device__ static float dotw(const W& w, int, const Q8Act& x, int64_t e0) {
    const int4 a = __ldg(reinterpret_cast<const int4*>(x.xq + e0 / 4));
    const int4 c = __ldg(reinterpret_cast<const int4*>(x.xq + e0 / 4 + 4));
    const int xl[4] = {a.x, a.y, a.z, a.w}, xh[4] = {c.x, c.y, c.z, c.w};
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s = dp4a(static_cast<int>(w.w[i] & 0x0F0F0F0Fu), xl[i], s);
      s = dp4a(static_cast<int>((w.w[i] >> 4) & 0x0F0F0F0Fu), xh[i], s);
    }
    const int sx = __ldg(x.xs + e0 / 16) + __ldg(x.xs + e0 / 16 + 1);
    return w.d * __ldg(x.xd + e0 / 32) * static_cast<float>(s - 8 * sx);
  }
  __device__ static float dot(const uint8_t* b, int p, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ4_0>(b, p, x, e0);
  }
};

// k4_scale_min (core/quant_blocks.h) on the scale bytes held as words w0 = s[0..3],
// w1 = s[4..7], w2 = s[8..11].
__device__ __forceinline__ void scale_min_words(uint32_t w0, uint32_t w1, uint32_t w2, int j,
                                                int* sc, int* m) {
  if (j < 4) {
    *sc = (w0 >> (8 * j)) & 63;
    *m = (w1 >> (8 * j)) & 63;
  } else {
    const int sh = 8 * (j - 4);
    const uint32_t b2 = (w2 >> sh) & 0xFF, b0 = (w0 >> sh) & 0xFF, b1 = (w1 >> sh) & 0xFF;
    *sc = static_cast<int>((b2 & 0xF) | ((b0 >> 6) << 4));
    *m = static_cast<int>((b2 >> 4) | ((b1 >> 6) << 4));
  }
}

struct DotQ4_K {
  struct W {
    uint32_t w[4];
    float dsc0, dm0, dsc1, dm1;  // d * scale, dmin * min of the part's two groups
  };
  __device__ static W load(const uint8_t* b, int p) {
    const int c = p / 2, hh = p % 2;
    W r;
    const uint4 u = ld_u128(b + 16 + 32 * c + 16 * hh);
    r.w[0] = u.x, r.w[1] = u.y, r.w[2] = u.z, r.w[3] = u.w;
    // d, dmin and the 12 scale bytes in one 16-byte load; scales unpacked with shifts
    // (a run-time index into a byte array would go to local memory).
    const uint4 hd = ld_u128(b);
    const float d = h2f(static_cast<uint16_t>(hd.x & 0xFFFF)),
                dmin = h2f(static_cast<uint16_t>(hd.x >> 16));
    int sc0, m0, sc1, m1;
    scale_min_words(hd.y, hd.z, hd.w, 2 * c, &sc0, &m0);
    scale_min_words(hd.y, hd.z, hd.w, 2 * c + 1, &sc1, &m1);
    r.dsc0 = d * sc0, r.dm0 = dmin * m0, r.dsc1 = d * sc1, r.dm1 = dmin * m1;
    return r;
  }
  __device__ static float dotw(const W& w, int p, const Q8Act& x, int64_t e0) {
    const int c = p / 2, hh = p % 2;
    const int64_t elo = e0 + 64 * c + 16 * hh, ehi = elo + 32;
    const int4 a = __ldg(reinterpret_cast<const int4*>(x.xq + elo / 4));
    const int4 a2 = __ldg(reinterpret_cast<const int4*>(x.xq + ehi / 4));
    const int xl[4] = {a.x, a.y, a.z, a.w}, xh[4] = {a2.x, a2.y, a2.z, a2.w};
    int slo = 0, shi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      slo = dp4a(static_cast<int>(w.w[i] & 0x0F0F0F0Fu), xl[i], slo);
      shi = dp4a(static_cast<int>((w.w[i] >> 4) & 0x0F0F0F0Fu), xh[i], shi);
    }
    const float lo = __ldg(x.xd + elo / 32) * (w.dsc0 * slo - w.dm0 * __ldg(x.xs + elo / 16));
    const float hi = __ldg(x.xd + ehi / 32) * (w.dsc1 * shi - w.dm1 * __ldg(x.xs + ehi / 16));
    return lo + hi;
  }
  __device__ static float dot(const uint8_t* b, int p, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ4_K>(b, p, x, e0);
  }
};

// Q4_K in parts of 64 elements (v14, run 51): part c of a block is its qs bytes 32c..32c+31
// (low nibbles: group 2c, high nibbles: group 2c + 1). One head load and one scale unpack
// serve 64 elements instead of 32, and x's two scales and four sums come in one load each:
// the 32-element part issued ~165 instructions a part in v3 (ncu, run 50), the product
// issue-bound at 72% of the schedulers' cycles. 4 parts a block.
struct PartsQ4_K64 {
  static constexpr int kBlockElems = 256, kBlockBytes = 144, kParts = 4;
};
struct DotQ4_K64 {
  struct W {
    uint32_t w[8];
    float dsc0, dm0, dsc1, dm1;  // d * scale, dmin * min of groups 2c and 2c + 1
  };
  __device__ static W load(const uint8_t* b, int c) {
    W r;
    const uint4 u0 = ld_u128(b + 16 + 32 * c), u1 = ld_u128(b + 32 + 32 * c);
    r.w[0] = u0.x, r.w[1] = u0.y, r.w[2] = u0.z, r.w[3] = u0.w;
    r.w[4] = u1.x, r.w[5] = u1.y, r.w[6] = u1.z, r.w[7] = u1.w;
    const uint4 hd = ld_u128(b);
    const float d = h2f(static_cast<uint16_t>(hd.x & 0xFFFF)),
                dmin = h2f(static_cast<uint16_t>(hd.x >> 16));
    // Groups 2c and 2c + 1 are bytes (2c) % 4 and (2c) % 4 + 1 of the scale words; groups 4-7
    // take their low bits from the third word and their top 2 bits from the first two. No
    // branch: the lanes of a warp hold every c.
    const int sh = 16 * (c & 1);
    const uint32_t a0 = hd.y >> sh, a1 = hd.z >> sh, a2 = hd.w >> sh;
    const bool lo = c < 2;
    const int sc0 = lo ? a0 & 63 : (a2 & 0xF) | (((a0 >> 6) & 3) << 4);
    const int m0 = lo ? a1 & 63 : ((a2 >> 4) & 0xF) | (((a1 >> 6) & 3) << 4);
    const int sc1 = lo ? (a0 >> 8) & 63 : ((a2 >> 8) & 0xF) | (((a0 >> 14) & 3) << 4);
    const int m1 = lo ? (a1 >> 8) & 63 : ((a2 >> 12) & 0xF) | (((a1 >> 14) & 3) << 4);
    r.dsc0 = d * sc0, r.dm0 = dmin * m0, r.dsc1 = d * sc1, r.dm1 = dmin * m1;
    return r;
  }
  __device__ static float dotw(const W& w, int c, const Q8Act& x, int64_t e0) {
    const int64_t e = e0 + 64 * c;  // group 2c: [e, e + 32), group 2c + 1: [e + 32, e + 64)
    const int4* xq = reinterpret_cast<const int4*>(x.xq + e / 4);
    const int4 l0 = __ldg(xq), l1 = __ldg(xq + 1), h0 = __ldg(xq + 2), h1 = __ldg(xq + 3);
    const float2 xd = __ldg(reinterpret_cast<const float2*>(x.xd + e / 32));
    const int4 xs = __ldg(reinterpret_cast<const int4*>(x.xs + e / 16));
    const int xl[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
    const int xh[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
    int slo = 0, shi = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      slo = dp4a(static_cast<int>(w.w[i] & 0x0F0F0F0Fu), xl[i], slo);
      shi = dp4a(static_cast<int>((w.w[i] >> 4) & 0x0F0F0F0Fu), xh[i], shi);
    }
    return xd.x * (w.dsc0 * slo - w.dm0 * (xs.x + xs.y)) +
           xd.y * (w.dsc1 * shi - w.dm1 * (xs.z + xs.w));
  }
  __device__ static float dot(const uint8_t* b, int c, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ4_K64>(b, c, x, e0);
  }
};

// Q6_K: the integer dot of 16 six-bit codes (low nibbles of lw >> lshift, high 2 bits of
// hw >> hshift, minus nothing: the caller subtracts 32 x's sum) with x's 16 int8 at element e.
__device__ __forceinline__ int q6k_idot16(const uint32_t lw[4], const uint32_t hw[4], int lshift,
                                          int hshift, const Q8Act& x, int64_t e) {
  const int4 a = __ldg(reinterpret_cast<const int4*>(x.xq + e / 4));
  const int xv[4] = {a.x, a.y, a.z, a.w};
  int acc = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t q = ((lw[i] >> lshift) & 0x0F0F0F0Fu) | (((hw[i] >> hshift) & 0x03030303u) << 4);
    acc = dp4a(static_cast<int>(q), xv[i], acc);
  }
  return acc;
}

struct DotQ6_K {
  struct W {
    uint32_t lw[4], hw[4];
    float d;  // d * the group's scale
  };
  __device__ static W load(const uint8_t* b, int g) {
    const int h = g / 8, s = (g % 8) / 2, l0 = 16 * (g % 2);
    W r;
    ld16_u2(b + 64 * h + 32 * (s & 1) + l0, r.lw);
    ld16_u2(b + 128 + 32 * h + l0, r.hw);
    r.d =
        h2f(ld_u16(b + 208)) *
        static_cast<float>(static_cast<int8_t>(__ldcs(reinterpret_cast<const char*>(b) + 192 + g)));
    return r;
  }
  __device__ static float dotw(const W& w, int g, const Q8Act& x, int64_t e0) {
    const int h = g / 8, s = (g % 8) / 2, l0 = 16 * (g % 2);
    const int64_t e = e0 + 128 * h + 32 * s + l0;
    const int acc = q6k_idot16(w.lw, w.hw, s >= 2 ? 4 : 0, 2 * s, x, e);
    return w.d * __ldg(x.xd + e / 32) * static_cast<float>(acc - 32 * __ldg(x.xs + e / 16));
  }
  __device__ static float dot(const uint8_t* b, int g, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ6_K>(b, g, x, e0);
  }
};

// Q6_K in parts of two groups (v11, bench/cuda/NOTES.md, run 40): DotQ6_K's part of 16
// elements loads 16 bytes of ql and 16 of qh for 12 bytes of weights (qh's 16 bytes hold the
// high bits of 64 elements, groups s = 0..3), 12 word loads in all. The low and high nibbles
// of the same ql bytes are groups s and s + 2, so a part p = (h, ql half sp, l0) of 32
// elements takes groups sp and sp + 2 from one ql and one qh load: 8 parts a block, as Q4_K.
// Element i of group s: 128 h + 32 s + l0 + i, its scale byte 8 h + 2 s + l0 / 16.
// (Parts of all four groups, 4 a block, left half of v3's threads idle on 4096-column rows:
// 26.0 us against 18.8 for Qwen3-8B's down projection.)
struct DotQ6_K2 {
  struct W {
    uint32_t lw[4], hw[4];
    float d, sc0, sc1;  // the block's d, the scales of groups sp and sp + 2
  };
  __device__ static W load(const uint8_t* b, int p) {
    const int h = p / 4, sp = (p / 2) % 2, l0 = 16 * (p % 2);
    W r;
    ld16_u2(b + 64 * h + 32 * sp + l0, r.lw);
    ld16_u2(b + 128 + 32 * h + l0, r.hw);
    const char* sc = reinterpret_cast<const char*>(b) + 192 + 8 * h + l0 / 16;
    r.sc0 = static_cast<float>(static_cast<int8_t>(__ldcs(sc + 2 * sp)));
    r.sc1 = static_cast<float>(static_cast<int8_t>(__ldcs(sc + 2 * sp + 4)));
    r.d = h2f(ld_u16(b + 208));
    return r;
  }
  // Group s (sp or sp + 2) of the part: its scale times x's d times the integer dot.
  __device__ static float group(const W& w, int lshift, int s, float sc, int h, int l0,
                                const Q8Act& x, int64_t e0) {
    const int64_t e = e0 + 128 * h + 32 * s + l0;
    const int acc = q6k_idot16(w.lw, w.hw, lshift, 2 * s, x, e);
    return sc * __ldg(x.xd + e / 32) * static_cast<float>(acc - 32 * __ldg(x.xs + e / 16));
  }
  __device__ static float dotw(const W& w, int p, const Q8Act& x, int64_t e0) {
    const int h = p / 4, sp = (p / 2) % 2, l0 = 16 * (p % 2);
    return w.d * (group(w, 0, sp, w.sc0, h, l0, x, e0) + group(w, 4, sp + 2, w.sc1, h, l0, x, e0));
  }
  __device__ static float dot(const uint8_t* b, int p, const Q8Act& x, int64_t e0) {
    return part_dot<DotQ6_K2>(b, p, x, e0);
  }
};
// The part geometry the kernels walk for DotQ6_K2.
struct PartsQ6_K2 {
  static constexpr int kBlockElems = 256, kBlockBytes = 210, kParts = 8;
};

}  // namespace strata::backend::cuda
