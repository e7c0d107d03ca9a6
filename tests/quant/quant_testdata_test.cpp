// Strata's block formats against the GGUF ecosystem (../shared/testdata/quant, see its
// README): dequantization must match llama.cpp's bit for bit, and Strata's quantizers must
// come within 1.15x of llama-quantize's error on the same source.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "gguf/gguf.h"

namespace strata {
namespace {

std::string testdata_dir() {
  const char* env = std::getenv("STRATA_TESTDATA");
  return std::string(env != nullptr ? env : "../shared/testdata") + "/quant";
}

// One tensor of a GGUF file: its type, shape (ne0, ne1) and raw bytes.
struct TensorData {
  DType type;
  int64_t ne0 = 1, ne1 = 1;
  const uint8_t* data = nullptr;
};

// A GGUF file opened with strata::gguf, its tensors by name.
struct Loaded {
  std::unique_ptr<gguf::File> file;
  std::map<std::string, TensorData> tensors;
};

bool load(const std::string& path, Loaded* out) {
  Result<std::unique_ptr<gguf::File>> file = gguf::File::open(path);
  if (!file.is_ok()) {
    ADD_FAILURE() << path << ": " << file.status().to_string();
    return false;
  }
  out->file = std::move(*file);
  for (const gguf::TensorInfo& t : out->file->tensors()) {
    TensorData td;
    td.type = t.type;
    td.ne0 = t.shape.empty() ? 1 : t.shape[0];
    td.ne1 = t.rows();
    td.data = out->file->tensor_data(t);
    out->tensors[t.name] = td;
  }
  return true;
}

std::vector<float> to_f32(const TensorData& t) {
  std::vector<float> out(static_cast<size_t>(t.ne0 * t.ne1));
  const size_t rb = row_bytes(t.type, t.ne0);
  for (int64_t r = 0; r < t.ne1; ++r) dequantize_row(t.type, t.data + r * rb, out.data() + r * t.ne0, t.ne0);
  return out;
}

// Relative RMS error: sqrt(sum (y - x)^2 / sum x^2).
double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
    den += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(num / den);
}

class QuantTestdata : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantTestdata, DequantizeMatchesReferenceBitForBit) {
  const std::string name = GetParam();
  const std::optional<DType> type = dtype_from_name(name);
  ASSERT_TRUE(type.has_value()) << name;
  Loaded quant, expected;
  ASSERT_TRUE(load(testdata_dir() + "/" + name + ".gguf", &quant)) << testdata_dir();
  ASSERT_TRUE(load(testdata_dir() + "/" + name + ".expected.gguf", &expected));
  ASSERT_EQ(quant.tensors.size(), 4u);
  for (const auto& [tname, t] : quant.tensors) {
    SCOPED_TRACE(tname);
    EXPECT_EQ(t.type, t.ne1 > 1 ? *type : DType::kF32);
    ASSERT_TRUE(can_dequantize(t.type));
    const std::vector<float> got = to_f32(t);
    const TensorData& e = expected.tensors.at(tname);
    ASSERT_EQ(e.type, DType::kF32);
    ASSERT_EQ(e.ne0 * e.ne1, t.ne0 * t.ne1);
    int64_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      uint32_t want;
      std::memcpy(&want, e.data + 4 * i, 4);
      const uint32_t have = f32_to_bits(got[i]);
      if (have != want && mismatches++ < 5) {
        ADD_FAILURE() << "element " << i << ": got " << got[i] << " (0x" << std::hex << have
                      << "), want " << bits_to_f32(want) << " (0x" << want << ")" << std::dec;
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

// Strata's quantizer on source.f32 vs llama-quantize's output for the same source. The bound
// is 1.15x the reference error per tensor (the brief's "quality similar to the reference").
TEST_P(QuantTestdata, QuantizeErrorWithinReference) {
  const std::string name = GetParam();
  const DType type = *dtype_from_name(name);
  Loaded source, expected;
  ASSERT_TRUE(load(testdata_dir() + "/source.f32.gguf", &source));
  ASSERT_TRUE(load(testdata_dir() + "/" + name + ".expected.gguf", &expected));
  ASSERT_TRUE(can_quantize(type));
  for (const auto& [tname, src] : source.tensors) {
    if (src.ne1 == 1) continue;  // the 1-D tensor stays F32
    SCOPED_TRACE(tname);
    const std::vector<float> x = to_f32(src);
    const std::vector<float> ref = to_f32(expected.tensors.at(tname));
    std::vector<uint8_t> q(row_bytes(type, src.ne0) * src.ne1);
    std::vector<float> y(x.size());
    const size_t rb = row_bytes(type, src.ne0);
    for (int64_t r = 0; r < src.ne1; ++r) {
      quantize_row(type, x.data() + r * src.ne0, q.data() + r * rb, src.ne0);
      dequantize_row(type, q.data() + r * rb, y.data() + r * src.ne0, src.ne0);
    }
    const double ours = rel_rms(x, y), theirs = rel_rms(x, ref);
    std::printf("%-7s %-22s rel RMS: strata %.6f  llama.cpp %.6f  ratio %.3f\n", name.c_str(),
                tname.c_str(), ours, theirs, theirs > 0 ? ours / theirs : 0.0);
    EXPECT_LE(ours, 1.15 * theirs + 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantTestdata,
                         ::testing::Values("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                           "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
                                           "IQ4_XS", "MXFP4"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

}  // namespace
}  // namespace strata
