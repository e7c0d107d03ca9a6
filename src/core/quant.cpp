// Dispatch from DType to the per-format scalar kernels (quant_legacy.cpp, quant_k.cpp,
// quant_k_quantize.cpp, quant_iq.cpp), plus the plain float types.
#include "core/quant.h"

#include "core/check.h"
#include "core/fp16.h"
#include "core/quant_internal.h"

namespace strata {
namespace {

namespace qd = quant_detail;
using DequantFn = void (*)(const void*, float*, int64_t);
using QuantFn = void (*)(const float*, void*, int64_t);

struct BlockFns {
  DType type;
  DequantFn dequantize;
  QuantFn quantize;
};

constexpr BlockFns kBlockFns[] = {
    {DType::kQ4_0, qd::dequantize_q4_0, qd::quantize_q4_0},
    {DType::kQ4_1, qd::dequantize_q4_1, qd::quantize_q4_1},
    {DType::kQ5_0, qd::dequantize_q5_0, qd::quantize_q5_0},
    {DType::kQ5_1, qd::dequantize_q5_1, qd::quantize_q5_1},
    {DType::kQ8_0, qd::dequantize_q8_0, qd::quantize_q8_0},
    {DType::kQ2_K, qd::dequantize_q2_k, qd::quantize_q2_k},
    {DType::kQ3_K, qd::dequantize_q3_k, qd::quantize_q3_k},
    {DType::kQ4_K, qd::dequantize_q4_k, qd::quantize_q4_k},
    {DType::kQ5_K, qd::dequantize_q5_k, qd::quantize_q5_k},
    {DType::kQ6_K, qd::dequantize_q6_k, qd::quantize_q6_k},
    {DType::kQ8_K, qd::dequantize_q8_k, qd::quantize_q8_k},
    {DType::kIQ4_NL, qd::dequantize_iq4_nl, qd::quantize_iq4_nl},
    {DType::kIQ4_XS, qd::dequantize_iq4_xs, qd::quantize_iq4_xs},
    {DType::kMXFP4, qd::dequantize_mxfp4, qd::quantize_mxfp4},
};

const BlockFns* block_fns(DType type) {
  for (const auto& f : kBlockFns) {
    if (f.type == type) return &f;
  }
  return nullptr;
}

bool is_float(DType type) {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16;
}

int64_t num_blocks_of(DType type, int64_t n) {
  const uint32_t block_elems = dtype_info(type).block_elems;
  STRATA_CHECK_MSG(n % block_elems == 0, "row length is not a multiple of the block size");
  return n / block_elems;
}

}  // namespace

bool can_dequantize(DType type) { return is_float(type) || block_fns(type) != nullptr; }
bool can_quantize(DType type) { return can_dequantize(type); }

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::kF32: {
      const float* s = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = s[i];
      return;
    }
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    default: break;
  }
  const BlockFns* fns = block_fns(type);
  STRATA_CHECK_MSG(fns != nullptr, "dequantize_row: unsupported type");
  fns->dequantize(src, dst, num_blocks_of(type, n));
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::kF32: {
      float* d = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    default: break;
  }
  const BlockFns* fns = block_fns(type);
  STRATA_CHECK_MSG(fns != nullptr, "quantize_row: unsupported type");
  fns->quantize(src, dst, num_blocks_of(type, n));
}

}  // namespace strata
