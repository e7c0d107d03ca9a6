// The SSD tier's on-disk record: one file per block, a fixed 128-byte header readable without
// the payload (fast re-indexing), the token ids, the payload, and an XXH3-128 checksum of
// everything before it.
//
//   offset  size  field
//   0       8     magic "STRKVBLK"
//   8       4     format version (kRecordVersion)
//   12      4     header bytes (128)
//   16      16    model fingerprint (lo, hi)
//   32      16    block key
//   48      16    parent key (chain_root for a first block)
//   64      4x8   num_layers, num_kv_heads, head_dim, dtype, block_tokens, num_tokens, depth, codec
//   96      8     payload bytes (encoded KV + state blob)
//   104     8     state bytes
//   112     8     XXH3-64 of bytes [0, 112) and the token ids: the header check
//   120     8     zero
//   128     4*num_tokens  token ids (i32)
//   ...     payload bytes
//   end-16  16    XXH3-128 of every byte before it: the record check
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "kv/block_codec.h"
#include "kv/block_key.h"
#include "kv/layout.h"

namespace strata::kv {

inline constexpr uint32_t kRecordVersion = 1;
inline constexpr size_t kRecordHeaderBytes = 128;

struct RecordInfo {
  Fingerprint fingerprint;
  BlockKey key;
  BlockKey parent;
  KvLayout layout;
  BlockCodec codec = BlockCodec::kRaw;
  int32_t num_tokens = 0;
  int32_t depth = 0;
  uint64_t payload_bytes = 0;
  std::vector<int32_t> tokens;

  uint64_t file_bytes() const {
    return kRecordHeaderBytes + 4 * static_cast<uint64_t>(num_tokens) + payload_bytes + 16;
  }
};

// The bytes before the payload (header + token ids) for `info` (info.tokens filled).
std::vector<uint8_t> encode_record_head(const RecordInfo& info);
// The 16-byte trailer: XXH3-128 over the concatenation of `parts` (head, then the payload,
// which may come in several pieces).
std::array<uint8_t, 16> record_trailer(std::span<const std::span<const uint8_t>> parts);

// Parse and check the head of a record (header + token ids; `bytes` may hold more). Checks
// magic, version and the header checksum; kCorrupt / kUnsupported otherwise. Does not read
// or check the payload.
Result<RecordInfo> parse_record_head(std::span<const uint8_t> bytes);

// Check a whole record file's bytes: head, size and trailer. On success returns the info and
// the payload's offset in `bytes`.
Result<RecordInfo> verify_record(std::span<const uint8_t> bytes, size_t* payload_offset);

}  // namespace strata::kv
