// Test helpers for the kv module: small layouts, deterministic KV contents, temp directories.
#pragma once

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kv/layout.h"

namespace strata::kv::testing {

// 2 layers x 2 kv heads x 32 dims, F16, 4-token blocks: 512 B per token, 2 KiB per block.
inline KvLayout tiny_layout(int64_t state_bytes = 0, int32_t block_tokens = 4) {
  KvLayout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 32;
  l.dtype = DType::kF16;
  l.block_tokens = block_tokens;
  l.state_bytes = state_bytes;
  return l;
}

// The value the "model" writes for (layer, K/V, position, token, head, dim): depends on the
// token and position, so a block served under the wrong key or position shows.
inline float kv_value(int layer, int kv, int pos, int32_t token, int head, int dim) {
  uint32_t h = static_cast<uint32_t>(token) * 2654435761u ^ static_cast<uint32_t>(pos) * 40503u ^
               static_cast<uint32_t>(layer * 8 + kv * 4 + head) * 97u;
  return static_cast<float>(static_cast<int>(h % 2001) - 1000) / 250.f +
         0.01f * static_cast<float>(dim);
}

// A unique temporary directory removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/strata_kv_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::vector<int32_t> random_tokens(std::mt19937& rng, size_t n, int32_t vocab = 50) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

}  // namespace strata::kv::testing
