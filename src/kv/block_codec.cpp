// Block codecs for the lower tiers.
#include "kv/block_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "core/fp16.h"

namespace strata::kv {

namespace {

// Rows of K/V in a block: num_layers x (K, V) x block_tokens x num_kv_heads, each head_dim long.
size_t num_rows(const KvLayout& l) {
  return size_t{2} * l.num_layers * l.block_tokens * l.num_kv_heads;
}

float load(DType t, const uint8_t* row, int i) {
  switch (t) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return fp16_to_f32(h);
    }
    default: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return bf16_to_f32(h);
    }
  }
}

void store(DType t, uint8_t* row, int i, float v) {
  switch (t) {
    case DType::kF32:
      std::memcpy(row + 4 * i, &v, 4);
      break;
    case DType::kF16: {
      uint16_t h = f32_to_fp16(v);
      std::memcpy(row + 2 * i, &h, 2);
      break;
    }
    default: {
      uint16_t h = f32_to_bf16(v);
      std::memcpy(row + 2 * i, &h, 2);
      break;
    }
  }
}

}  // namespace

bool codec_supports(BlockCodec codec, const KvLayout& layout) {
  if (codec == BlockCodec::kRaw) return true;
  return layout.dtype == DType::kF16 || layout.dtype == DType::kBF16 || layout.dtype == DType::kF32;
}

size_t encoded_block_bytes(const KvLayout& layout, BlockCodec codec) {
  size_t state = static_cast<size_t>(layout.state_bytes);
  if (codec == BlockCodec::kRaw) return layout.kv_bytes() + state;
  return num_rows(layout) * (sizeof(float) + static_cast<size_t>(layout.head_dim)) + state;
}

// The rows of a block lie back to back: layer-major, K then V, head, token (layout.h), so
// row r starts at r * row_bytes for both the device form and the int8 form.
void encode_block(const KvLayout& layout, BlockCodec codec, const uint8_t* block, uint8_t* out) {
  STRATA_CHECK(codec_supports(codec, layout));
  size_t state = static_cast<size_t>(layout.state_bytes);
  if (codec == BlockCodec::kRaw) {
    std::memcpy(out, block, layout.kv_bytes());
    std::memcpy(out + layout.kv_bytes(), block + layout.state_offset(), state);
    return;
  }
  const int d = layout.head_dim;
  const size_t in_row = row_bytes(layout.dtype, d);
  const size_t out_row = sizeof(float) + static_cast<size_t>(d);
  const size_t rows = num_rows(layout);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* src = block + r * in_row;
    uint8_t* dst = out + r * out_row;
    float absmax = 0.f;
    for (int i = 0; i < d; ++i) absmax = std::max(absmax, std::fabs(load(layout.dtype, src, i)));
    float scale = absmax / 127.f;
    float inv = scale > 0.f ? 1.f / scale : 0.f;
    std::memcpy(dst, &scale, sizeof scale);
    auto* q = reinterpret_cast<int8_t*>(dst + sizeof(float));
    for (int i = 0; i < d; ++i) {
      float v = std::nearbyint(load(layout.dtype, src, i) * inv);
      q[i] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
    }
  }
  std::memcpy(out + rows * out_row, block + layout.state_offset(), state);
}

void decode_block(const KvLayout& layout, BlockCodec codec, const uint8_t* in, uint8_t* block) {
  STRATA_CHECK(codec_supports(codec, layout));
  size_t state = static_cast<size_t>(layout.state_bytes);
  if (codec == BlockCodec::kRaw) {
    std::memcpy(block, in, layout.kv_bytes());
    std::memcpy(block + layout.state_offset(), in + layout.kv_bytes(), state);
    return;
  }
  const int d = layout.head_dim;
  const size_t out_row = row_bytes(layout.dtype, d);
  const size_t in_row = sizeof(float) + static_cast<size_t>(d);
  const size_t rows = num_rows(layout);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* src = in + r * in_row;
    float scale;
    std::memcpy(&scale, src, sizeof scale);
    const auto* q = reinterpret_cast<const int8_t*>(src + sizeof(float));
    uint8_t* dst = block + r * out_row;
    for (int i = 0; i < d; ++i) store(layout.dtype, dst, i, scale * static_cast<float>(q[i]));
  }
  std::memcpy(block + layout.state_offset(), in + rows * in_row, state);
}

}  // namespace strata::kv
