// GGUF files: the metadata value model, the validated reader (mmap) and the writer.
// Format: magic "GGUF", version 2 or 3, little-endian; key/value metadata; tensor infos; an
// aligned data section. Every read is bounds-checked: a malformed file is a Status, never a
// crash or an out-of-bounds read.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace strata::gguf {

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);

// One metadata value. Scalars use the member that fits their type (integers and bools in
// `i`, u64 bit-cast; floats in `f`); arrays keep their element type and one typed vector.
struct Value {
  ValueType type = ValueType::kU32;
  int64_t i = 0;
  double f = 0;
  std::string s;
  // arrays
  ValueType elem_type = ValueType::kU8;
  std::vector<int64_t> ints;          // integer and bool elements
  std::vector<double> floats;         // f32 / f64 elements
  std::vector<std::string> strings;   // string elements
  std::vector<Value> arrays;          // nested arrays

  size_t array_size() const;
  bool is_integer() const;
  bool is_float() const;

  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value string_array(std::vector<std::string> v);
  static Value f32_array(std::vector<float> v);
  static Value i32_array(std::vector<int32_t> v);

  bool operator==(const Value& o) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // GGUF order: shape[0] (ne0) is the contiguous dimension
  DType type = DType::kF32;
  uint64_t offset = 0;         // from the start of the data section
  uint64_t num_bytes = 0;
  int64_t num_elements() const;
  int64_t rows() const { return shape.empty() ? 1 : num_elements() / shape[0]; }
};

// Limits that make a hostile file fail fast instead of allocating the world.
struct ReadLimits {
  uint64_t max_tensors = 1u << 20;
  uint64_t max_kv = 1u << 20;
  uint64_t max_string_bytes = 1u << 26;
  uint64_t max_array_elems = 1u << 26;
  uint32_t max_array_depth = 4;
};

class File {
 public:
  // Maps the file read-only; tensor data stays in the page cache, never copied.
  static Result<std::unique_ptr<File>> open(const std::string& path, const ReadLimits& limits = {});
  // Parses bytes the caller keeps alive (used by fuzzing and tests).
  static Result<std::unique_ptr<File>> parse(std::span<const uint8_t> bytes,
                                             const ReadLimits& limits = {});
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  uint64_t file_bytes() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;     // any integer type or bool
  std::optional<double> get_float(std::string_view key) const;    // any float or integer type
  std::optional<bool> get_bool(std::string_view key) const;
  // The architecture-prefixed key, e.g. arch_key("block_count") -> "llama.block_count".
  std::string arch_key(std::string_view suffix) const;
  std::string architecture() const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const TensorInfo& t) const { return base_ + data_offset_ + t.offset; }
  std::span<const uint8_t> bytes() const { return {base_, size_}; }

 private:
  File() = default;
  Status parse_all(const ReadLimits& limits);

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;  // mmap'd region when opened from a path
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Writes GGUF v3. Tensor data is produced on demand at write time (so a multi-GB synthetic
// model never sits in memory twice) or given as bytes.
class Writer {
 public:
  using Producer = std::function<void(uint8_t* dst, uint64_t num_bytes)>;

  explicit Writer(uint32_t alignment = 32) : alignment_(alignment) {}
  void set(std::string key, Value value);  // replaces an existing key, keeps its position
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape, Producer produce);
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape,
                  std::vector<uint8_t> bytes);
  size_t num_tensors() const { return tensors_.size(); }
  // Total bytes of the file that write() would produce.
  uint64_t file_bytes() const;

  // Crash-safe: writes PATH.tmp, fsyncs, renames over PATH.
  Status write_file(const std::string& path) const;
  std::vector<uint8_t> write_to_buffer() const;

 private:
  struct PendingTensor {
    TensorInfo info;
    Producer produce;
  };
  void layout() const;
  void write_header(std::vector<uint8_t>& out) const;

  uint32_t alignment_;
  std::vector<KeyValue> kv_;
  std::vector<PendingTensor> tensors_;
  friend Writer copy_of(const File& file);
  mutable uint64_t header_bytes_ = 0;
};

// A writer holding everything `file` holds (metadata in order, tensors in offset order, data
// read from the mapping at write time). `file` must outlive the writer.
Writer copy_of(const File& file);

}  // namespace strata::gguf
