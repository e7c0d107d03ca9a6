// Block key hashing (XXH3-128 over a fixed field order).
#include "kv/block_key.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

namespace strata::kv {

BlockKey block_key(const Fingerprint& fingerprint, const BlockKey& parent,
                   std::span<const int32_t> tokens, const ExtraKey& extra) {
  // Fields in a fixed order and width; the token count makes a partial block's key differ
  // from any full block's.
  struct Head {
    uint64_t fp_lo, fp_hi, parent_lo, parent_hi, extra_lo, extra_hi, num_tokens;
  } head{fingerprint.lo, fingerprint.hi, parent.lo, parent.hi, extra.lo, extra.hi, tokens.size()};
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  XXH3_128bits_reset(&st);
  XXH3_128bits_update(&st, &head, sizeof head);
  XXH3_128bits_update(&st, tokens.data(), tokens.size_bytes());
  XXH128_hash_t h = XXH3_128bits_digest(&st);
  BlockKey k{h.low64, h.high64};
  if (k.is_zero()) k.lo = 1;  // zero is reserved for "no parent"
  return k;
}

BlockKey chain_root(const Fingerprint& fingerprint, const ExtraKey& extra) {
  return block_key(fingerprint, BlockKey{}, {}, extra);
}

std::vector<BlockKey> full_block_keys(const Fingerprint& fingerprint, int32_t block_tokens,
                                      std::span<const int32_t> tokens, const ExtraKey& extra) {
  std::vector<BlockKey> keys;
  size_t n = tokens.size() / static_cast<size_t>(block_tokens);
  keys.reserve(n);
  BlockKey parent = chain_root(fingerprint, extra);
  for (size_t i = 0; i < n; ++i) {
    parent = block_key(fingerprint, parent, tokens.subspan(i * block_tokens, block_tokens), extra);
    keys.push_back(parent);
  }
  return keys;
}

}  // namespace strata::kv
