// GGUF block formats, defined once for every backend: block structs, scalar dequantize and
// scalar quantize. Bit-exact with the GGUF ecosystem's decoders (tests/quant against
// ../shared/testdata/quant). Fast kernels live in the backends and test against these.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace strata {

// Can this type be dequantized / quantized by Strata?
bool can_dequantize(DType type);
bool can_quantize(DType type);

// dst[n] f32 <- src (n elements of `type`); n a multiple of the block size.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// dst (n elements of `type`) <- src[n] f32; n a multiple of the block size.
void quantize_row(DType type, const float* src, void* dst, int64_t n);

}  // namespace strata
