// TEMPORARY: a throwaway GGUF tensor-table reader so the testdata test can run before
// strata::gguf lands on main. To be deleted and replaced by the real reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace strata::tmp_gguf {

struct Tensor {
  uint32_t type;
  std::vector<uint64_t> dims;
  const uint8_t* data;
};

struct File {
  std::vector<uint8_t> bytes;
  std::map<std::string, Tensor> tensors;
};

inline bool read_file(const std::string& path, File* f) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  f->bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto rd = [&](void* dst, size_t n) { std::memcpy(dst, f->bytes.data() + pos, n); pos += n; };
  auto u32 = [&] { uint32_t v; rd(&v, 4); return v; };
  auto u64 = [&] { uint64_t v; rd(&v, 8); return v; };
  auto str = [&] { uint64_t n = u64(); std::string s(reinterpret_cast<const char*>(f->bytes.data() + pos), n); pos += n; return s; };
  const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  std::function<void(uint32_t)> skip = [&](uint32_t t) {
    if (t == 8) { str(); return; }
    if (t == 9) { uint32_t et = u32(); uint64_t n = u64(); for (uint64_t i = 0; i < n; ++i) skip(et); return; }
    pos += kSize[t];
  };
  u32();  // magic
  u32();  // version
  const uint64_t n_tensors = u64(), n_kv = u64();
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = str();
    const uint32_t t = u32();
    if (key == "general.alignment" && t == 4) { alignment = u32(); continue; }
    skip(t);
  }
  std::vector<std::pair<std::string, uint64_t>> offs;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = str();
    Tensor t;
    const uint32_t nd = u32();
    for (uint32_t d = 0; d < nd; ++d) t.dims.push_back(u64());
    t.type = u32();
    offs.emplace_back(name, u64());
    f->tensors[name] = t;
  }
  const size_t base = (pos + alignment - 1) / alignment * alignment;
  for (auto& [name, off] : offs) f->tensors[name].data = f->bytes.data() + base + off;
  return true;
}

}  // namespace strata::tmp_gguf
