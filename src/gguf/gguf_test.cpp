#include "gguf/gguf.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/huge_pages.h"
#include "core/rng.h"

namespace strata::gguf {
namespace {

namespace fs = std::filesystem;

std::string testdata() {
  const char* env = std::getenv("STRATA_TESTDATA");
  return env ? env : "../shared/testdata";
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::vector<std::string> all_testdata_ggufs() {
  std::vector<std::string> out;
  for (const char* dir : {"tokenizer", "quant"}) {
    for (const auto& e : fs::directory_iterator(testdata() + "/" + dir)) {
      if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Writes `path`: one F32 tensor, blk.0.ffn_up.weight, of data->size() random bytes (seed).
void write_large_file(const std::string& path, uint64_t seed, std::vector<uint8_t>* data) {
  Writer w;
  w.set("general.architecture", Value::string("llama"));
  Rng rng(seed);
  for (size_t i = 0; i + 8 <= data->size(); i += 8) {
    const uint64_t v = rng.next_u64();
    std::memcpy(data->data() + i, &v, 8);
  }
  w.add_tensor("blk.0.ffn_up.weight", DType::kF32, {1024, static_cast<int64_t>(data->size() / 4096)},
               *data);
  ASSERT_TRUE(w.write_file(path).is_ok());
}

Writer small_model_writer() {
  Writer w;
  w.set("general.architecture", Value::string("llama"));
  w.set("llama.block_count", Value::u32(2));
  w.set("llama.rope.freq_base", Value::f32(500000.0f));
  w.set("general.flag", Value::boolean(true));
  w.set("tokenizer.ggml.tokens", Value::string_array({"a", "b", "<s>", "é"}));
  w.set("tokenizer.ggml.scores", Value::f32_array({0.5f, -1.0f, 0.0f, 2.0f}));
  w.set("tokenizer.ggml.token_type", Value::i32_array({1, 1, 3, 1}));
  Value nested;
  nested.type = ValueType::kArray;
  nested.elem_type = ValueType::kArray;
  nested.arrays = {Value::i32_array({1, 2}), Value::i32_array({3})};
  w.set("test.nested", nested);
  Value u64 = Value::u64(0xfedcba9876543210ull);
  w.set("test.u64", u64);
  std::vector<uint8_t> a(4 * 8 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  w.add_tensor("blk.0.attn_q.weight", DType::kF16, {8, 4}, a);
  std::vector<uint8_t> b(34 * 2);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 3 + 1);
  w.add_tensor("token_embd.weight", DType::kQ8_0, {32, 2}, b);
  return w;
}

TEST(Gguf, WriteThenReadGivesSameMetadataAndTensors) {
  Writer w = small_model_writer();
  std::vector<uint8_t> bytes = w.write_to_buffer();
  EXPECT_EQ(bytes.size(), w.file_bytes());
  auto f = File::parse(bytes);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ((*f)->architecture(), "llama");
  EXPECT_EQ((*f)->get_int("llama.block_count"), 2);
  EXPECT_EQ((*f)->get_float("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ((*f)->get_bool("general.flag"), true);
  EXPECT_EQ((*f)->find("test.u64")->i, static_cast<int64_t>(0xfedcba9876543210ull));
  EXPECT_EQ((*f)->find("tokenizer.ggml.tokens")->strings[3], "é");
  ASSERT_EQ((*f)->find("test.nested")->arrays.size(), 2u);
  EXPECT_EQ((*f)->find("test.nested")->arrays[0].ints[1], 2);
  const TensorInfo* t = (*f)->find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::kQ8_0);
  EXPECT_EQ(t->num_bytes, 68u);
  EXPECT_EQ((*f)->tensor_data(*t)[5], 5 * 3 + 1);
  EXPECT_EQ(t->offset % 32, 0u);
  // Re-writing what was read gives the same bytes.
  EXPECT_EQ(copy_of(**f).write_to_buffer(), bytes);
}

TEST(Gguf, EveryTestdataFileLoadsAndRewritesIdentically) {
  const auto files = all_testdata_ggufs();
  ASSERT_GT(files.size(), 20u);
  for (const auto& path : files) {
    auto f = File::open(path);
    ASSERT_TRUE(f.is_ok()) << path << ": " << f.status().to_string();
    EXPECT_FALSE((*f)->architecture().empty()) << path;
    const std::vector<uint8_t> original = read_bytes(path);
    EXPECT_EQ(copy_of(**f).write_to_buffer(), original) << path;
  }
}

TEST(Gguf, WriteFileIsAtomicAndReadable) {
  const std::string path = testing::TempDir() + "/strata_gguf_test.gguf";
  Writer w = small_model_writer();
  ASSERT_TRUE(w.write_file(path).is_ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto f = File::open(path);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ((*f)->tensors().size(), 2u);
  fs::remove(path);
  EXPECT_EQ(File::open(path).status().code(), ErrorCode::kNotFound);
}

// A file of many 2 MB pieces, just written (its page cache in small folios): File::open may
// re-read its cache in 2 MB folios (reader.cpp, map_file_huge), or keep it where the file
// system gives none; either way every open reads the bytes written.
TEST(Gguf, LargeFileReadsTheSameWhetherItsCacheIsReReadOrNot) {
  const std::string path = testing::TempDir() + "/strata_gguf_large_test.gguf";
  std::vector<uint8_t> data(size_t{24} << 20);
  ASSERT_NO_FATAL_FAILURE(write_large_file(path, 7, &data));
  for (int open = 0; open < 2; ++open) {
    auto f = File::open(path);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    const TensorInfo* t = (*f)->find_tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->num_bytes, data.size());
    EXPECT_EQ(std::memcmp((*f)->tensor_data(*t), data.data(), data.size()), 0) << "open " << open;
  }
  fs::remove(path);
}

// Once File::open returns, every whole 2 MB piece of a large file is mapped from a 2 MB folio,
// or none is (a file system or kernel without large folios, THP off): never a few pieces in
// small folios here and there, as readahead left them when the mapping was judged on samples.
// Whatever the cache held before: just written, dropped, or read back in small pieces.
TEST(Gguf, OpenMapsEveryWholePieceOfALargeFileFromHugeFoliosOrNone) {
  const std::string path = testing::TempDir() + "/strata_gguf_folio_test.gguf";
  std::vector<uint8_t> data(size_t{128} << 20);
  ASSERT_NO_FATAL_FAILURE(write_large_file(path, 9, &data));
  const auto size = static_cast<int64_t>(fs::file_size(path));
  for (int open = 0; open < 3; ++open) {
    if (open == 1) {  // the cache dropped and read back in 64 KB reads, as a plain copy reads it
      const int fd = ::open(path.c_str(), O_RDONLY);
      ASSERT_GE(fd, 0);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
      std::ifstream in(path, std::ios::binary);
      std::vector<char> buf(size_t{64} << 10);
      while (in.read(buf.data(), static_cast<std::streamsize>(buf.size()))) {
      }
    }
    auto f = File::open(path);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    const TensorInfo* t = (*f)->find_tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(std::memcmp((*f)->tensor_data(*t), data.data(), data.size()), 0) << "open " << open;
    const int64_t pmd = file_pmd_mapped_bytes((*f)->bytes().data());  // the mapping's start
    if (pmd <= 0) GTEST_SKIP() << "no 2 MB folios for this file here (smaps: " << pmd << ")";
    EXPECT_EQ(pmd, size / (int64_t{2} << 20) * (int64_t{2} << 20)) << "open " << open;
  }
  fs::remove(path);
}

// Every corruption is an error, never a crash (run this under ASan: the sanitizer preset).
TEST(Gguf, TruncationAtEveryOffsetIsAnError) {
  const std::vector<uint8_t> bytes = small_model_writer().write_to_buffer();
  for (size_t n = 0; n < bytes.size(); ++n) {
    // Copy to an exact-size heap buffer so ASan catches any read past the end.
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto f = File::parse(cut);
    EXPECT_FALSE(f.is_ok()) << "truncated at " << n;
  }
}

TEST(Gguf, TruncatedRealFilesAreErrors) {
  for (const auto& path : all_testdata_ggufs()) {
    const std::vector<uint8_t> bytes = read_bytes(path);
    Rng rng(std::hash<std::string>{}(path));
    for (int k = 0; k < 40; ++k) {
      const size_t n = rng.below(static_cast<uint32_t>(bytes.size()));
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
      auto f = File::parse(cut);
      if (f.is_ok()) {
        // Only possible when the cut lands in trailing padding after the last tensor.
        const auto& ts = (*f)->tensors();
        ASSERT_FALSE(ts.empty()) << path << " cut at " << n;
      }
    }
  }
}

TEST(Gguf, HeaderCorruptionsGiveClearErrors) {
  const std::vector<uint8_t> good = small_model_writer().write_to_buffer();
  auto with = [&](size_t off, std::vector<uint8_t> patch) {
    std::vector<uint8_t> b = good;
    std::copy(patch.begin(), patch.end(), b.begin() + static_cast<long>(off));
    return File::parse(b);
  };
  auto bad_magic = with(0, {'G', 'G', 'U', 'X'});
  ASSERT_FALSE(bad_magic.is_ok());
  EXPECT_NE(bad_magic.status().message().find("magic"), std::string::npos);
  auto bad_version = with(4, {9, 0, 0, 0});
  ASSERT_FALSE(bad_version.is_ok());
  EXPECT_NE(bad_version.status().message().find("version 9"), std::string::npos);
  auto huge_tensors = with(8, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0});
  ASSERT_FALSE(huge_tensors.is_ok());
  EXPECT_NE(huge_tensors.status().message().find("absurd"), std::string::npos);
  auto huge_kv = with(16, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0});
  ASSERT_FALSE(huge_kv.is_ok());
}

TEST(Gguf, TensorOutOfBoundsOverlapAndUnknownTypeAreErrors) {
  auto build = [](DType t2, uint64_t forced_offset, uint32_t forced_type) {
    Writer w;
    w.set("general.architecture", Value::string("llama"));
    w.add_tensor("a", DType::kF32, {8}, std::vector<uint8_t>(32, 1));
    w.add_tensor("b", t2, {8}, std::vector<uint8_t>(32, 2));
    std::vector<uint8_t> bytes = w.write_to_buffer();
    // Patch tensor b's info: find its name, then type (after dims) and offset.
    const std::string key = "b";
    for (size_t i = 0; i + 9 < bytes.size(); ++i) {
      if (bytes[i] == 1 && bytes[i + 8] == 'b' && bytes[i + 9] == 1) {  // len=1, "b", n_dims=1
        const size_t type_off = i + 9 + 4 + 8;
        if (forced_type != UINT32_MAX) std::memcpy(&bytes[type_off], &forced_type, 4);
        if (forced_offset != UINT64_MAX) std::memcpy(&bytes[type_off + 4], &forced_offset, 8);
        break;
      }
    }
    return bytes;
  };
  auto ok = File::parse(build(DType::kF32, UINT64_MAX, UINT32_MAX));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  std::vector<uint8_t> overlap = build(DType::kF32, 0, UINT32_MAX);
  auto r1 = File::parse(overlap);
  ASSERT_FALSE(r1.is_ok());
  EXPECT_NE(r1.status().message().find("overlap"), std::string::npos) << r1.status().to_string();
  std::vector<uint8_t> oob = build(DType::kF32, 1024, UINT32_MAX);
  auto r2 = File::parse(oob);
  ASSERT_FALSE(r2.is_ok());
  EXPECT_NE(r2.status().message().find("past the file"), std::string::npos);
  std::vector<uint8_t> unknown = build(DType::kF32, UINT64_MAX, 77);
  auto r3 = File::parse(unknown);
  ASSERT_FALSE(r3.is_ok());
  EXPECT_EQ(r3.status().code(), ErrorCode::kUnsupported);
  std::vector<uint8_t> misaligned = build(DType::kF32, 36, UINT32_MAX);
  EXPECT_FALSE(File::parse(misaligned).is_ok());
}

TEST(Gguf, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> good = small_model_writer().write_to_buffer();
  Rng rng(1234);
  int errors = 0;
  for (int k = 0; k < 3000; ++k) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng.below(4));
    for (int j = 0; j < flips; ++j) {
      // Header region mostly: that is where the structure is.
      const size_t off = rng.below(static_cast<uint32_t>(std::min<size_t>(b.size(), 600)));
      b[off] ^= static_cast<uint8_t>(1u << rng.below(8));
    }
    auto f = File::parse(b);
    if (!f.is_ok()) ++errors;
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace strata::gguf
