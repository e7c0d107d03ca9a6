// The KV layout the cache knows (layers, kv heads, head dim, dtype, block size, state blob)
// and the model fingerprint that keys a cache to one model + tokenizer + layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "core/status.h"

namespace strata::kv {

// A 128-bit value: block keys, fingerprints, extra keys. {0, 0} is "none" (the root parent).
struct Key128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool is_zero() const { return lo == 0 && hi == 0; }
  friend bool operator==(const Key128&, const Key128&) = default;
  std::string to_hex() const;  // 32 hex digits, hi first
};
struct Key128Hash {
  size_t operator()(const Key128& k) const {
    return static_cast<size_t>(k.lo ^ (k.hi * 0x9E3779B97F4A7C15ULL));
  }
};

using Fingerprint = Key128;  // model weights + tokenizer + KV dtype + layout
using ExtraKey = Key128;     // per-tenant salt, image hash...; zero for none

// What the cache knows of a model: the shape of one block. Never an architecture.
struct KvLayout {
  int32_t num_layers = 0;  // attention layers that keep K/V
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  DType dtype = DType::kF16;  // F16, BF16, F32 or Q8_0 (head_dim a multiple of 32)
  int32_t block_tokens = 64;  // tokens per block (see kv_cache.h for why 64)
  int64_t state_bytes = 0;    // per-block recurrent state blob (0: pure attention)

  Status validate() const;

  // Bytes of K (or V) of one token in one layer: [num_kv_heads, head_dim] of dtype.
  size_t token_bytes() const { return row_bytes(dtype, int64_t{num_kv_heads} * head_dim); }
  // Bytes of K (or V) of one block in one layer: [num_kv_heads, block_tokens, head_dim].
  size_t layer_bytes() const { return token_bytes() * static_cast<size_t>(block_tokens); }
  // Bytes of all K and V of one block: num_layers x (K, V) x layer_bytes.
  size_t kv_bytes() const { return layer_bytes() * 2 * static_cast<size_t>(num_layers); }
  // Offset of the state blob in a block (64-byte aligned after the KV).
  size_t state_offset() const { return (kv_bytes() + 63) & ~size_t{63}; }
  // Bytes of one block in a RAM tier: KV, padding, state blob, padded to 64.
  size_t block_bytes() const {
    return (state_offset() + static_cast<size_t>(state_bytes) + 63) & ~size_t{63};
  }
  // KV bytes per token over all layers (K and V): what a cached token costs.
  size_t bytes_per_token() const { return token_bytes() * 2 * static_cast<size_t>(num_layers); }

  friend bool operator==(const KvLayout&, const KvLayout&) = default;
};

// Where things are inside one block of a RAM tier (all offsets from the block's start):
//   layer l, K: [num_kv_heads, block_tokens, head_dim] dtype at  l * layer_stride_bytes
//   layer l, V: same shape                                at  l * layer_stride_bytes +
//   v_offset_bytes state blob: [state_bytes] u8                          at  state_offset_bytes
// Token t of head h of K in layer l: + t * token_stride_bytes + h * head_stride_bytes
// (a row: head_dim values; for Q8_0, head_dim/32 blocks of 34 bytes). Heads major: a head's
// rows of a block are one contiguous run, which decode attention streams through
// (backend::kv_row_offset, the one formula the kernels use).
struct BlockStrides {
  size_t block_stride_bytes;  // from block b to block b + 1 in a pool
  size_t layer_stride_bytes;  // from layer l to l + 1 (K and V of one layer)
  size_t v_offset_bytes;      // V after K inside one layer
  size_t token_stride_bytes;  // from token t to t + 1 inside one head's rows (a row)
  size_t head_stride_bytes;   // from kv head h to h + 1 (block_tokens rows)
  size_t state_offset_bytes;  // the state blob
};
BlockStrides block_strides(const KvLayout& layout);

// A fingerprint of everything that makes KV bytes reusable: the weights file identity (e.g.
// its path + size + a hash of its header or tensor data), the tokenizer identity (e.g. a
// hash of its vocabulary and merges), and the KV layout and dtype. The caller picks the
// strings; equal inputs give equal fingerprints across runs and machines.
Fingerprint make_fingerprint(std::string_view weights_id, std::string_view tokenizer_id,
                             const KvLayout& layout);

// An extra key from a string such as an API key's cache salt; empty gives zero (no salt).
ExtraKey make_extra_key(std::string_view salt);

}  // namespace strata::kv
