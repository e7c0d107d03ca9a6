// Block keys: a hash chain over (model fingerprint, parent key, token ids, extra key), so a
// key names a block's whole prefix. XXH3-128: a collision (a silent wrong hit) needs ~2^64
// blocks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/layout.h"

namespace strata::kv {

using BlockKey = Key128;

// The chain's root: the parent of a first block. Depends on the extra key, so no two tenants'
// chains share a node (not even in the index's parent -> children lists).
BlockKey chain_root(const Fingerprint& fingerprint, const ExtraKey& extra);

// The key of a block holding `tokens` (1..block_tokens of them; a partial block's key covers
// only its filled tokens) after the block keyed `parent` (chain_root() for the first block).
BlockKey block_key(const Fingerprint& fingerprint, const BlockKey& parent,
                   std::span<const int32_t> tokens, const ExtraKey& extra);

// Keys of the full blocks of `tokens` (tokens.size() / block_tokens of them), in order.
std::vector<BlockKey> full_block_keys(const Fingerprint& fingerprint, int32_t block_tokens,
                                      std::span<const int32_t> tokens, const ExtraKey& extra);

}  // namespace strata::kv
