// GGUF reader: a bounds-checked cursor over the mapped bytes, then validation of tensor
// infos (known type, sane shape, aligned, inside the data section, not overlapping).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/huge_pages.h"
#include "gguf/gguf.h"

namespace strata::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;

Status corrupt(std::string msg) { return error(ErrorCode::kCorrupt, std::move(msg)); }

class Cursor {
 public:
  Cursor(const uint8_t* p, uint64_t n) : p_(p), n_(n) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return n_ - pos_; }

  template <typename T>
  bool read(T& out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&out, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool read_string(std::string& out, uint64_t max_bytes) {
    uint64_t len;
    if (!read(len)) return false;
    if (len > remaining() || len > max_bytes) return false;
    out.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return true;
  }

 private:
  const uint8_t* p_;
  uint64_t n_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one element of a type (for count sanity checks).
uint64_t min_elem_bytes(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: return 8;
    case ValueType::kArray: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= 12; }

Status read_scalar(Cursor& c, ValueType t, Value& v, const ReadLimits& limits) {
  bool ok = true;
  switch (t) {
    case ValueType::kU8: { uint8_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kI8: { int8_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kU16: { uint16_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kI16: { int16_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kU32: { uint32_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kI32: { int32_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kU64: { uint64_t x; ok = c.read(x); v.i = static_cast<int64_t>(x); break; }
    case ValueType::kI64: { int64_t x; ok = c.read(x); v.i = x; break; }
    case ValueType::kF32: { float x; ok = c.read(x); v.f = x; break; }
    case ValueType::kF64: { double x; ok = c.read(x); v.f = x; break; }
    case ValueType::kBool: {
      uint8_t x;
      ok = c.read(x);
      if (ok && x > 1) return corrupt(fmt::format("bool value {} at offset {}", x, c.pos() - 1));
      v.i = x;
      break;
    }
    case ValueType::kString: ok = c.read_string(v.s, limits.max_string_bytes); break;
    case ValueType::kArray: return error(ErrorCode::kInternal, "array as scalar");
  }
  if (!ok) return corrupt(fmt::format("file ends inside a {} value at offset {}", value_type_name(t), c.pos()));
  return Status::ok();
}

Status read_value(Cursor& c, ValueType t, Value& v, const ReadLimits& limits, uint32_t depth) {
  v.type = t;
  if (t != ValueType::kArray) return read_scalar(c, t, v, limits);
  if (depth >= limits.max_array_depth) return corrupt("arrays nested too deeply");
  uint32_t et;
  uint64_t n;
  if (!c.read(et) || !c.read(n)) return corrupt(fmt::format("file ends inside an array header at offset {}", c.pos()));
  if (!valid_value_type(et)) return corrupt(fmt::format("unknown array element type {} at offset {}", et, c.pos()));
  v.elem_type = static_cast<ValueType>(et);
  if (n > limits.max_array_elems || n > c.remaining() / min_elem_bytes(v.elem_type)) {
    return corrupt(fmt::format("array of {} elements does not fit in the file (offset {})", n, c.pos()));
  }
  for (uint64_t k = 0; k < n; ++k) {
    Value e;
    STRATA_RETURN_IF_ERROR(read_value(c, v.elem_type, e, limits, depth + 1));
    if (v.elem_type == ValueType::kString) v.strings.push_back(std::move(e.s));
    else if (v.elem_type == ValueType::kArray) v.arrays.push_back(std::move(e));
    else if (e.is_float()) v.floats.push_back(e.f);
    else v.ints.push_back(e.i);
  }
  return Status::ok();
}

// The file mapped read-only at a 2 MB-aligned address, with MADV_HUGEPAGE: where the kernel's
// page cache holds the file in 2 MB folios (ext4/xfs on Linux 6.x read it that way once the
// mapping asks for huge pages), each 2 MB of weights is then one TLB entry instead of 512.
// Still a shared file mapping: nothing is copied, RSS stays the file's size. Decode of
// Qwen3-0.6B Q4_K_M on the 2-core Zen 5 VM: +0-3% tok/s against the same pages mapped 4 KB
// at a time, and a page cache of 2 MB folios (a file read through such a mapping) +5-8%
// against one of small folios (a file just written or copied); bench/cpu/NOTES.md, rounds 4,
// 9 and 10. And MADV_RANDOM: a fault then reads its own 2 MB folio and nothing ahead of it;
// the readahead that follows a fault otherwise brings pieces in in smaller folios here and
// there (13% of a 346 MB file, in runs of 1-3 pieces). A file cached in small folios stays so
// until evicted: see map_file_huge. Returns MAP_FAILED on failure, like mmap.
void* map_file(int fd, size_t bytes) {
  // a reserved range at a 2 MB boundary, the file mapped over it
  void* r = map_at_huge_boundary(bytes, PROT_NONE, MAP_NORESERVE);
  if (r == MAP_FAILED) return mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  void* m = mmap(r, bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (m == MAP_FAILED) {
    munmap(r, bytes);
    return m;
  }
  // Hints. Without THP a fault under MADV_RANDOM would read 4 KB alone: only with it.
  if (madvise(m, bytes, MADV_HUGEPAGE) == 0 && thp_enabled()) madvise(m, bytes, MADV_RANDOM);
  return m;
}

// Whether the whole 2 MB pieces of the mapping m (map_file's) over its first `bytes` that the
// page cache holds (their first page resident: mincore) are held in 2 MB folios: those pieces
// are faulted in (one byte each; no disk read) and must all be PMD-mapped. Pieces not cached
// are left alone: read later, each by its fault, they come in as 2 MB folios (map_file). With
// `all`, every piece is faulted in (read from disk where not cached) and judged. True where
// nothing can be judged (a file under 2 MB, no smaps, THP off).
bool cached_in_huge_folios(void* m, size_t bytes, bool all) {
  constexpr size_t kHuge = kHugePageBytes;
  const size_t pieces = bytes / kHuge;
  if (pieces == 0 || !thp_enabled()) return true;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident;  // a byte a page (mincore), unless `all`
  if (!all) {
    resident.resize(pieces * (kHuge / page));
    if (mincore(m, pieces * kHuge, resident.data()) != 0) return true;
  }
  volatile uint8_t sink = 0;
  size_t touched = 0;
  for (size_t i = 0; i < pieces; ++i) {
    if (!all && (resident[i * (kHuge / page)] & 1) == 0) continue;
    sink = sink + static_cast<const volatile uint8_t*>(m)[i * kHuge];
    ++touched;
  }
  const int64_t pmd = file_pmd_mapped_bytes(m);
  return pmd < 0 || static_cast<size_t>(pmd) >= touched * kHuge;
}

// The file mapped by map_file, its page cache first re-read in 2 MB folios where a cached
// piece was held in small ones (a file just written, or copied by a tool that reads it
// plainly, or read ahead in smaller folios): once per file and boot, for 5-10% faster decode
// ever after. Only where the file system gives large folios: its first 16 MB are re-read
// first, and the rest only if they came back in 2 MB folios (else the cache is kept as it
// is). The re-read is lazy: each piece is read, as one 2 MB folio, when first touched. Dirty
// pages are written first; pages other processes map stay as they are.
void* map_file_huge(int fd, size_t bytes) {
  void* m = map_file(fd, bytes);
  if (m == MAP_FAILED || cached_in_huge_folios(m, bytes, false)) return m;
  const size_t trial = std::min<size_t>(bytes, size_t{16} << 20);
  munmap(m, bytes);
  fdatasync(fd);
  posix_fadvise(fd, 0, static_cast<off_t>(trial), POSIX_FADV_DONTNEED);
  m = map_file(fd, bytes);
  if (m == MAP_FAILED || !cached_in_huge_folios(m, trial, true)) return m;
  munmap(m, bytes);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  return map_file(fd, bytes);
}

}  // namespace

File::~File() {
  if (map_ != nullptr) munmap(map_, size_);
}

Result<std::unique_ptr<File>> File::open(const std::string& path, const ReadLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                 fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error(ErrorCode::kIo, fmt::format("'{}' is not a regular file", path));
  }
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* m = map_file_huge(fd, f->size_);
    if (m == MAP_FAILED) {
      ::close(fd);
      return error(ErrorCode::kIo, fmt::format("cannot map '{}': {}", path, std::strerror(errno)));
    }
    f->map_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  Status st2 = f->parse_all(limits);
  if (!st2.is_ok()) return error(st2.code(), fmt::format("{}: {}", path, st2.message()));
  return f;
}

Result<std::unique_ptr<File>> File::parse(std::span<const uint8_t> bytes, const ReadLimits& limits) {
  std::unique_ptr<File> f(new File());
  f->path_ = "<memory>";
  f->base_ = bytes.data();
  f->size_ = bytes.size();
  STRATA_RETURN_IF_ERROR(f->parse_all(limits));
  return f;
}

Status File::parse_all(const ReadLimits& limits) {
  Cursor c(base_, size_);
  uint32_t magic;
  if (!c.read(magic)) return corrupt("file is too short to be GGUF");
  if (magic != kMagic) return corrupt(fmt::format("bad magic 0x{:08x}; not a GGUF file", magic));
  if (!c.read(version_)) return corrupt("file ends in the header");
  if (version_ != 2 && version_ != 3) {
    return error(ErrorCode::kUnsupported, fmt::format("GGUF version {} (supported: 2, 3)", version_));
  }
  uint64_t num_tensors, num_kv;
  if (!c.read(num_tensors) || !c.read(num_kv)) return corrupt("file ends in the header");
  if (num_tensors > limits.max_tensors || num_tensors > c.remaining() / 24) {
    return corrupt(fmt::format("tensor count {} is absurd for a {}-byte file", num_tensors, size_));
  }
  if (num_kv > limits.max_kv || num_kv > c.remaining() / 12) {
    return corrupt(fmt::format("metadata count {} is absurd for a {}-byte file", num_kv, size_));
  }
  for (uint64_t k = 0; k < num_kv; ++k) {
    KeyValue kv;
    if (!c.read_string(kv.key, 1u << 16)) return corrupt(fmt::format("bad metadata key #{} at offset {}", k, c.pos()));
    uint32_t t;
    if (!c.read(t)) return corrupt(fmt::format("file ends in metadata '{}'", kv.key));
    if (!valid_value_type(t)) return corrupt(fmt::format("metadata '{}' has unknown type {}", kv.key, t));
    Status st = read_value(c, static_cast<ValueType>(t), kv.value, limits, 0);
    if (!st.is_ok()) return corrupt(fmt::format("metadata '{}': {}", kv.key, st.message()));
    if (kv_index_.count(kv.key)) return corrupt(fmt::format("duplicate metadata key '{}'", kv.key));
    kv_index_.emplace(kv.key, kv_.size());
    kv_.push_back(std::move(kv));
  }
  if (const Value* a = find("general.alignment")) {
    if (!a->is_integer() || a->i <= 0 || a->i > (1 << 20) || (a->i & (a->i - 1)) != 0) {
      return corrupt("general.alignment must be a power of two");
    }
    alignment_ = static_cast<uint32_t>(a->i);
  }
  for (uint64_t k = 0; k < num_tensors; ++k) {
    TensorInfo t;
    if (!c.read_string(t.name, 1u << 16)) return corrupt(fmt::format("bad name of tensor #{}", k));
    uint32_t n_dims;
    if (!c.read(n_dims)) return corrupt(fmt::format("file ends in tensor '{}'", t.name));
    if (n_dims == 0 || n_dims > kMaxDims) return corrupt(fmt::format("tensor '{}' has {} dimensions", t.name, n_dims));
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne;
      if (!c.read(ne)) return corrupt(fmt::format("file ends in tensor '{}'", t.name));
      if (ne == 0 || ne > (1ull << 40)) return corrupt(fmt::format("tensor '{}' has dimension {} = {}", t.name, d, ne));
      t.shape.push_back(static_cast<int64_t>(ne));
    }
    uint32_t type_id;
    if (!c.read(type_id) || !c.read(t.offset)) return corrupt(fmt::format("file ends in tensor '{}'", t.name));
    const DTypeInfo* info = dtype_info(type_id);
    if (info == nullptr) {
      return error(ErrorCode::kUnsupported, fmt::format("tensor '{}' has unknown or unsupported type id {}", t.name, type_id));
    }
    t.type = info->type;
    // element count without overflow: each dim <= 2^40, and the product must stay < 2^50
    uint64_t elems = 1;
    for (int64_t d : t.shape) {
      elems *= static_cast<uint64_t>(d);  // each factor <= 2^40 and the running product <= 2^50
      if (elems > (1ull << 50)) return corrupt(fmt::format("tensor '{}' is absurdly large", t.name));
    }
    if (t.shape[0] % info->block_elems != 0) {
      return corrupt(fmt::format("tensor '{}': row of {} elements is not a multiple of the {} block size {}",
                                 t.name, t.shape[0], info->name, info->block_elems));
    }
    t.num_bytes = elems / info->block_elems * info->block_bytes;
    if (t.offset % alignment_ != 0) return corrupt(fmt::format("tensor '{}' offset {} is not aligned to {}", t.name, t.offset, alignment_));
    if (tensor_index_.count(t.name)) return corrupt(fmt::format("duplicate tensor name '{}'", t.name));
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_offset_ > size_ && !tensors_.empty()) return corrupt("file ends before its data section");
  const uint64_t data_bytes = size_ >= data_offset_ ? size_ - data_offset_ : 0;
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) {
    if (t.offset > data_bytes || t.num_bytes > data_bytes - t.offset) {
      return corrupt(fmt::format("tensor '{}' ({} bytes at offset {}) ends past the file; truncated?",
                                 t.name, t.num_bytes, t.offset));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    if (by_offset[k - 1]->offset + by_offset[k - 1]->num_bytes > by_offset[k]->offset) {
      return corrupt(fmt::format("tensors '{}' and '{}' overlap", by_offset[k - 1]->name, by_offset[k]->name));
    }
  }
  return Status::ok();
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || v->type != ValueType::kString) return std::nullopt;
  return v->s;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || !v->is_integer()) return std::nullopt;
  return v->i;
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  return std::nullopt;
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || v->type != ValueType::kBool) return std::nullopt;
  return v->i != 0;
}

std::string File::architecture() const { return get_string("general.architecture").value_or(""); }

std::string File::arch_key(std::string_view suffix) const {
  return architecture() + "." + std::string(suffix);
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace strata::gguf
