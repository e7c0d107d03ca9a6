// KvLayout validation, strides and fingerprints.
#include "kv/layout.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

namespace strata::kv {

std::string Key128::to_hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

Status KvLayout::validate() const {
  if (num_layers <= 0 || num_kv_heads <= 0 || head_dim <= 0) {
    return error(ErrorCode::kInvalidArgument,
                 fmt::format("KV layout needs positive layers/heads/head_dim, got {}/{}/{}",
                             num_layers, num_kv_heads, head_dim));
  }
  if (block_tokens <= 0 || block_tokens > 65536) {
    return error(ErrorCode::kInvalidArgument,
                 fmt::format("block size {} tokens is outside 1..65536", block_tokens));
  }
  if (state_bytes < 0) return error(ErrorCode::kInvalidArgument, "negative state blob size");
  switch (dtype) {
    case DType::kF16:
    case DType::kBF16:
    case DType::kF32:
      return Status::ok();
    case DType::kQ8_0:
      if (head_dim % 32 != 0) {
        return error(ErrorCode::kInvalidArgument,
                     fmt::format("Q8_0 KV needs head_dim a multiple of 32, got {}", head_dim));
      }
      return Status::ok();
    default:
      return error(ErrorCode::kUnsupported,
                   fmt::format("KV dtype {} is not supported; use F16, BF16, F32 or Q8_0",
                               dtype_name(dtype)));
  }
}

BlockStrides block_strides(const KvLayout& layout) {
  BlockStrides s{};
  s.block_stride_bytes = layout.block_bytes();
  s.layer_stride_bytes = 2 * layout.layer_bytes();
  s.v_offset_bytes = layout.layer_bytes();
  // heads major (backend::kv_row_offset): a head's rows of a block are one contiguous run
  s.token_stride_bytes = row_bytes(layout.dtype, layout.head_dim);
  s.head_stride_bytes = s.token_stride_bytes * static_cast<size_t>(layout.block_tokens);
  s.state_offset_bytes = layout.state_offset();
  return s;
}

namespace {
void update_str(XXH3_state_t* st, std::string_view s) {
  uint64_t n = s.size();
  XXH3_128bits_update(st, &n, sizeof n);
  XXH3_128bits_update(st, s.data(), s.size());
}
Key128 digest(XXH3_state_t* st) {
  XXH128_hash_t h = XXH3_128bits_digest(st);
  return Key128{h.low64, h.high64};
}
}  // namespace

Fingerprint make_fingerprint(std::string_view weights_id, std::string_view tokenizer_id,
                             const KvLayout& layout) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  // v2: blocks hold [num_kv_heads, block_tokens, head_dim] (v1: tokens major); a cache written
  // in the old order is another layout and is never restored into this one.
  update_str(st, "strata-kv-fingerprint-v2");
  update_str(st, weights_id);
  update_str(st, tokenizer_id);
  // Field by field, so struct padding never enters the hash.
  int64_t fields[] = {layout.num_layers,   layout.num_kv_heads,
                      layout.head_dim,     static_cast<int64_t>(layout.dtype),
                      layout.block_tokens, layout.state_bytes};
  XXH3_128bits_update(st, fields, sizeof fields);
  Fingerprint fp = digest(st);
  XXH3_freeState(st);
  return fp;
}

ExtraKey make_extra_key(std::string_view salt) {
  if (salt.empty()) return ExtraKey{};
  XXH128_hash_t h = XXH3_128bits_withSeed(salt.data(), salt.size(), 0x5a17);
  ExtraKey k{h.low64, h.high64};
  if (k.is_zero()) k.lo = 1;  // zero means "no salt"
  return k;
}

}  // namespace strata::kv
