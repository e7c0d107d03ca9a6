// Row-block-times-tile dot kernels behind matmul: a few weight rows against up to kMaxTile
// activation rows, so each weight block is decoded once per tile of tokens. The integer kernels take
// activations quantized per block (ActQ8_0 for the 32-element formats, ActQ8K for K-quants).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace strata::backend::cpu {

inline constexpr int kMaxTile = 4;  // activation rows per kernel call

enum class ActFormat { kF32, kQ8_0, kQ8K };

// y[t * y_stride + r] = w_r . x_t for r < nr, t < nt (1 <= nt <= kMaxTile, any nr):
// w_r = w + r * w_row_bytes, x_t = x + t * x_row_bytes in the kernel's activation format;
// cols elements. Inside, rows go in register blocks (4 rows for one token, fewer for tiles).
using DotTileFn = void (*)(const void* w, size_t w_row_bytes, int nr, const void* x,
                           size_t x_row_bytes, int nt, int64_t cols, float* y, int64_t y_stride);

// One token against rows with the token packed once per product (the AVX-512 one-token
// kernels repack it into the order their loops read): pack_bytes(cols) bytes, 64-byte aligned,
// filled once by pack(x, cols, packed); then dot1(w, w_row_bytes, nr, packed, x, cols, y) sets
// y[r] = w_r . x for r < nr, for any rows, from any thread.
using PackFn = void (*)(const void* x, int64_t cols, void* packed);
using PackedDotFn = void (*)(const void* w, size_t w_row_bytes, int nr, const void* packed,
                             const void* x, int64_t cols, float* y);

struct DotKernel {
  ActFormat act = ActFormat::kF32;
  DotTileFn dot = nullptr;  // nullptr: no fast kernel for this type (use the generic path)
  size_t (*pack_bytes)(int64_t cols) = nullptr;  // the packed one-token path, where there is one
  PackFn pack = nullptr;
  PackedDotFn dot1 = nullptr;
};

DotKernel dot_kernel(DType weight_type);

// The integer kernels come in an AVX2 build and an AVX-VNNI build (vpdpbusd/vpdpwssd), used
// when the CPU has avx_vnni. Tests and benches switch to compare the two.
bool vnni_kernels_available();
bool vnni_kernels_enabled();
void set_vnni_kernels(bool on);  // on: only takes effect where available
// AVX-512 (F, BW, VL, VNNI) kernels for Q8_0, Q4_K and Q6_K, preferred where the CPU has it: 512-bit
// one-token kernels (decode), the VNNI templates in EVEX form for tiles. Other types: as above.
bool avx512_kernels_available();
bool avx512_kernels_enabled();
void set_avx512_kernels(bool on);  // on: only takes effect where available
// Software prefetch distance on the weight stream of the AVX-512 one-token kernels, for
// benches: -1 (the default) a tuned distance per type, 0 off, > 0 this many bytes ahead.
void set_decode_prefetch(int64_t bytes);
// The AVX-512 Q4_K one-token kernel takes four super-blocks at a time where the CPU has
// AVX512-VBMI (q4k_rows4); tests and benches switch it off to compare with q4k_row alone.
bool q4k_four_blocks_available();
void set_q4k_four_blocks(bool on);
// Its block sums in the GF2P8AFFINEQB + VPACKSSDW form where the CPU has GFNI (default on);
// off: the shift-and-blend form, for tests and benches.
bool q4k_gfni_available();
void set_q4k_gfni(bool on);
// Q4_K tiles of 2-4 tokens (prefill) in the same four-super-block form where the CPU has GFNI
// and a row's super-blocks come in fours (default on); off: the VNNI tile templates.
void set_q4k_tokens(bool on);
// Q6_K (and Q8_0) tiles of 2-4 tokens in the one-token kernels' 512-bit form, each weight block
// decoded once for the tile (default on); off: the VNNI tile templates.
void set_tile_tokens_avx512(bool on);

// Activation quantization of one row of `cols` f32 (a multiple of 32, resp. 256):
// d = amax / 127, q = round-to-nearest-even(x / d). AVX2 and their scalar twins.
size_t act_row_bytes(ActFormat act, int64_t cols);
void quantize_act_row(ActFormat act, const float* x, int64_t cols, void* dst);
void quantize_act_row_scalar(ActFormat act, const float* x, int64_t cols, void* dst);

}  // namespace strata::backend::cpu
