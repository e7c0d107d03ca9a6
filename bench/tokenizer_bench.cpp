// tokenizer_bench: encode throughput (MB/s, one core) of a GGUF or tokenizer.json vocabulary
// on a mixed English / code / multilingual text, plus decode throughput.
// Usage: tokenizer_bench <vocab.gguf | tokenizer.json> [MB of text, default 8]
//
// Recorded at commit 6993434 on a shared AMD EPYC build box (load average ~12 on 2 cores,
// so wall-clock MB/s was ~3x lower; MB/s below are per CPU-second of the encoding thread),
// 8 MB of mixed text:
//   gpt-2 30, deepseek-coder 23, deepseek-llm 18, falcon 23, mpt 32, refact 28,
//   starcoder 28, qwen3 31, llama3 34, gpt-oss 34 (byte-level BPE);
//   llama-spm 42, phi-3 42, gemma3 42 (SentencePiece). Target: >= 5 MB/s.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "tokenizer/tokenizer.h"

using namespace strata;

static std::string make_text(size_t bytes) {
  // Deterministic mix: prose, code, numbers, some CJK and accents, so the word cache sees a
  // realistic mix of repeats and new words.
  static const char* const kWords[] = {
      "the", "model", "cache", "tokenizer", "returns", "value", "of", "and", "a", "in", "for",
      "int", "std::vector<int32_t>", "if", "(x", "==", "nullptr)", "{", "}", "return", "0;", "//",
      "2024", "3.14159", "éléphant", "naïve", "东京", "数据", "😀", "über", "self.", "__init__",
      "def", "import", "numpy", "as", "np", "\n", "\n\n", "    ", "\t", "42", "Hello,", "World!"};
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, sizeof(kWords) / sizeof(kWords[0]) - 1);
  std::uniform_int_distribution<int> num(0, 99999);
  std::string s;
  while (s.size() < bytes) {
    const size_t k = pick(rng);
    if (k == 21) {
      s += std::to_string(num(rng));  // fresh numbers defeat the cache
    } else {
      s += kWords[k];
    }
    s += ' ';
  }
  return s;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <vocab.gguf | tokenizer.json> [MB]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const double mb = argc > 2 ? std::atof(argv[2]) : 8.0;
  Result<std::unique_ptr<tokenizer::Tokenizer>> tok = Status(ErrorCode::kInternal, "unset");
  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<gguf::File> file;
  if (path.size() > 5 && path.substr(path.size() - 5) == ".json") {
    std::ifstream f(path, std::ios::binary);
    std::string j((std::istreambuf_iterator<char>(f)), {});
    std::string cfg_path = path.substr(0, path.size() - 14) + "tokenizer_config.json";
    std::ifstream fc(cfg_path, std::ios::binary);
    std::string c((std::istreambuf_iterator<char>(fc)), {});
    tok = tokenizer::Tokenizer::from_hf_json(j, c);
  } else {
    auto opened = gguf::File::open(path);
    if (!opened) {
      std::fprintf(stderr, "%s\n", opened.status().to_string().c_str());
      return 1;
    }
    file = std::move(opened).value();
    tok = tokenizer::Tokenizer::from_gguf(*file);
  }
  if (!tok) {
    std::fprintf(stderr, "%s\n", tok.status().to_string().c_str());
    return 1;
  }
  std::printf("load: %.3f s (%d tokens)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count(),
              (*tok)->vocab_size());
  const std::string text = make_text(static_cast<size_t>(mb * 1e6));
  using clock = std::chrono::steady_clock;
  (void)(*tok)->encode(text.substr(0, 100000), false, false);  // warm up
  // CPU time of this thread as well as wall time: the build machines are shared, and the
  // one-core throughput is what the CPU time measures.
  auto thread_cpu_s = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
  };
  const double cpu0 = thread_cpu_s();
  auto t0 = clock::now();
  const auto ids = (*tok)->encode(text, false, false);
  auto t1 = clock::now();
  const double enc_cpu_s = thread_cpu_s() - cpu0;
  const std::string back = (*tok)->decode(ids);
  auto t2 = clock::now();
  const double enc_s = std::chrono::duration<double>(t1 - t0).count();
  const double dec_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("%s: %.1f MB -> %zu tokens (%.2f bytes/token)\n", path.c_str(), text.size() / 1e6, ids.size(),
              double(text.size()) / double(ids.size()));
  std::printf("encode: %.2f MB/s of CPU time, one core (%.3f s CPU; %.2f MB/s wall)\n",
              text.size() / 1e6 / enc_cpu_s, enc_cpu_s, text.size() / 1e6 / enc_s);
  std::printf("decode: %.1f MB/s; round trip %s\n", back.size() / 1e6 / dec_s, back == text ? "exact" : "DIFFERS");
  return 0;
}
