// Per-format scalar kernels behind quant.h's dispatch (quant.cpp), and the scale-fitting
// helpers the quantizers share (quant_fit.cpp). Internal to core.
#pragma once

#include <cstdint>

namespace strata::quant_detail {

// Dequantize num_blocks blocks: src blocks of the format -> dst [num_blocks * block_elems] f32.
void dequantize_q4_0(const void* src, float* dst, int64_t num_blocks);
void dequantize_q4_1(const void* src, float* dst, int64_t num_blocks);
void dequantize_q5_0(const void* src, float* dst, int64_t num_blocks);
void dequantize_q5_1(const void* src, float* dst, int64_t num_blocks);
void dequantize_q8_0(const void* src, float* dst, int64_t num_blocks);
void dequantize_q2_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_q3_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_q4_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_q5_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_q6_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_q8_k(const void* src, float* dst, int64_t num_blocks);
void dequantize_iq4_nl(const void* src, float* dst, int64_t num_blocks);
void dequantize_iq4_xs(const void* src, float* dst, int64_t num_blocks);
void dequantize_mxfp4(const void* src, float* dst, int64_t num_blocks);

// Quantize num_blocks blocks: src [num_blocks * block_elems] f32 -> dst blocks.
void quantize_q4_0(const float* src, void* dst, int64_t num_blocks);
void quantize_q4_1(const float* src, void* dst, int64_t num_blocks);
void quantize_q5_0(const float* src, void* dst, int64_t num_blocks);
void quantize_q5_1(const float* src, void* dst, int64_t num_blocks);
void quantize_q8_0(const float* src, void* dst, int64_t num_blocks);
void quantize_q2_k(const float* src, void* dst, int64_t num_blocks);
void quantize_q3_k(const float* src, void* dst, int64_t num_blocks);
void quantize_q4_k(const float* src, void* dst, int64_t num_blocks);
void quantize_q5_k(const float* src, void* dst, int64_t num_blocks);
void quantize_q6_k(const float* src, void* dst, int64_t num_blocks);
void quantize_q8_k(const float* src, void* dst, int64_t num_blocks);
void quantize_iq4_nl(const float* src, void* dst, int64_t num_blocks);
void quantize_iq4_xs(const float* src, void* dst, int64_t num_blocks);
void quantize_mxfp4(const float* src, void* dst, int64_t num_blocks);

}  // namespace strata::quant_detail
