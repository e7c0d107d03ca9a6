// How a block is stored in the lower tiers (host RAM, SSD): raw bytes, or K/V rows as int8
// with a per-row absmax scale (halves F16/BF16 blocks; lossy, behind a flag).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kv/layout.h"

namespace strata::kv {

enum class BlockCodec : uint32_t {
  kRaw = 0,   // the device tier's bytes as they are
  kInt8 = 1,  // per row [head_dim] of K or V: f32 scale = absmax / 127, then int8[head_dim]
};

// Can `codec` store `layout`? (kInt8 needs F16, BF16 or F32 KV.)
bool codec_supports(BlockCodec codec, const KvLayout& layout);

// Bytes of one encoded block: the KV in `codec` form followed by the raw state blob.
size_t encoded_block_bytes(const KvLayout& layout, BlockCodec codec);

// out[encoded_block_bytes] <- block (one device-tier block, layout.block_bytes()).
void encode_block(const KvLayout& layout, BlockCodec codec, const uint8_t* block, uint8_t* out);
// block <- in[encoded_block_bytes]. For kInt8 the KV is rounded: |error| <= absmax / 254.
void decode_block(const KvLayout& layout, BlockCodec codec, const uint8_t* in, uint8_t* block);

}  // namespace strata::kv
