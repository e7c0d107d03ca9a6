// The Gated DeltaNet ops against their scalar twins, inside step graphs too, and tiny
// synthesized models' greedy output, CUDA vs CPU. Label gpu: skipped where no CUDA device is
// present.
#include "backend/cuda/cuda_test_util.h"

namespace strata::backend::cuda {
namespace {

using namespace testing;

// --- Gated DeltaNet: against the scalar twins (deltanet_ref.cpp, double), mirroring
// backend/cpu/deltanet_test.cpp: odd sizes, chained segments, unaligned starts.

TEST(CudaBackend, DeltaNetConvMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  for (int kernel : {2, 4}) {
    for (int64_t channels : {5, 300, 777}) {
      Rng rng(static_cast<uint64_t>(kernel * 1000 + channels));
      const int64_t n = 23;
      const size_t st = static_cast<size_t>((kernel - 1) * channels);
      const auto x = normal(rng, n * channels), w = normal(rng, channels * kernel, 0.5f);
      const auto st0 = normal(rng, st);
      // Fresh start, then chained through the state (in place, then to a new buffer), with a
      // 1-row segment shorter than the conv history.
      std::vector<float> h1(st), h2(st), a(x.size());
      cpu::ref::ssm_conv(x.data(), channels, w.data(), kernel,
                    std::vector<RecurrentSeg>{{0, 10, 0, nullptr, h1.data()},
                                              {10, 1, 10, h1.data(), h1.data()},
                                              {11, 12, 11, h1.data(), h2.data()}},
                    a.data());
      float* d1 = g.out(st);
      float* d2 = g.out(st);
      float* dx = g.up(x);
      float* dw = g.up(w);
      float* out = g.out(x.size());
      g.be.ssm_conv(dx, channels, dw, kernel,
                    std::vector<RecurrentSeg>{{0, 10, 0, nullptr, d1}, {10, 1, 10, d1, d1}, {11, 12, 11, d1, d2}},
                    out);
      EXPECT_LT(rel_err(g.down(out, x.size()), a), 1e-6) << kernel << " " << channels;
      EXPECT_EQ(g.down(d2, st), h2);  // the state is a copy of inputs
      // Two independent sequences in one call: one from a given state, in place (3 rows), one
      // of a single row from another state into a fresh buffer.
      std::vector<float> s3 = st0, s4 = normal(rng, st), s5(st);
      cpu::ref::ssm_conv(x.data(), channels, w.data(), kernel,
                    std::vector<RecurrentSeg>{{0, 3, 40, s3.data(), s3.data()}, {5, 1, 7, s4.data(), s5.data()}},
                    a.data());
      float* d3 = g.up(st0);
      float* d4 = g.up(s4);
      float* d5 = g.out(st);
      float* out2 = g.up(std::vector<float>(x.size(), 0.0f));
      g.be.ssm_conv(dx, channels, dw, kernel,
                    std::vector<RecurrentSeg>{{0, 3, 40, d3, d3}, {5, 1, 7, d4, d5}}, out2);
      const auto got = g.down(out2, x.size());
      for (int64_t r : {0, 1, 2, 5}) {
        for (int64_t c = 0; c < channels; ++c) {
          const size_t i = static_cast<size_t>(r * channels + c);
          ASSERT_NEAR(got[i], a[i], 1e-5 * (1 + std::fabs(a[i]))) << r << " " << c;
        }
      }
      EXPECT_EQ(g.down(d3, st), s3);
      EXPECT_EQ(g.down(d5, st), s5);
    }
  }
}

struct DeltaSeq {
  std::vector<int64_t> seg_rows;  // one sequence cut into these segments
  int64_t pos0;                   // position of its first token (0: no initial state)
};
struct DeltaCase {
  DeltaNetShape shape;
  std::vector<DeltaSeq> seqs;  // batched in one call, rows in this order
};

TEST(CudaBackend, DeltaRuleMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  const std::vector<DeltaCase> cases = {
      {{1, 1, 8, 8}, {{{1, 1, 1}, 0}}},                      // decode steps
      {{2, 4, 16, 12}, {{{150}, 0}}},                        // one long segment
      {{2, 4, 16, 12}, {{{30, 100, 1, 7}, 37}}},             // unaligned start, chained
      {{3, 3, 5, 7}, {{{65, 2, 129}, 63}}},                  // odd head dims
      {{1, 2, 32, 32}, {{{64, 64}, 64}}},                    // chunk-aligned
      {{2, 4, 48, 40}, {{{3}, 5}, {{17, 16}, 0}, {{1}, 9}}}, // three sequences, two column tiles
      {{16, 32, 128, 128}, {{{70, 58}, 200}, {{1}, 12}}},    // the Qwen3.5/3.6 shape
      {{2, 2, 256, 64}, {{{40, 1}, 3}}},                     // head_k_dim 256
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const DeltaCase& c = cases[ci];
    const auto& sh = c.shape;
    int64_t n = 0;
    for (const auto& q : c.seqs)
      for (int64_t r : q.seg_rows) n += r;
    const int64_t row = 2 * int64_t{sh.num_k_heads} * sh.head_k_dim + int64_t{sh.num_v_heads} * sh.head_v_dim;
    Rng rng(ci + 7);
    const auto qkv = normal(rng, n * row);
    const auto alpha = normal(rng, n * sh.num_v_heads), beta = normal(rng, n * sh.num_v_heads);
    const auto dt = normal(rng, sh.num_v_heads, 0.5f);
    std::vector<float> A(static_cast<size_t>(sh.num_v_heads));
    for (float& x : A) x = -std::exp(rng.normal());
    const size_t state = static_cast<size_t>(sh.num_v_heads) * sh.head_k_dim * sh.head_v_dim;
    // Per sequence two state buffers; each segment reads the one the previous wrote.
    const size_t nseq = c.seqs.size();
    std::vector<std::vector<float>> host(2 * nseq);
    std::vector<float*> dev(2 * nseq);
    std::vector<RecurrentSeg> hs, ds;
    std::vector<size_t> final_buf(nseq);
    int64_t r0 = 0;
    for (size_t q = 0; q < nseq; ++q) {
      host[2 * q] = normal(rng, state, 0.3f);
      host[2 * q + 1].assign(state, 0.0f);
      dev[2 * q] = g.up(host[2 * q]);
      dev[2 * q + 1] = g.out(state);
      const auto& sq = c.seqs[q];
      for (size_t i = 0; i < sq.seg_rows.size(); ++i) {
        const size_t in = 2 * q + i % 2, o = 2 * q + (i + 1) % 2;
        const bool fresh = i == 0 && sq.pos0 == 0;
        hs.push_back({r0, sq.seg_rows[i], sq.pos0 + r0, fresh ? nullptr : host[in].data(), host[o].data()});
        ds.push_back({r0, sq.seg_rows[i], sq.pos0 + r0, fresh ? nullptr : dev[in], dev[o]});
        r0 += sq.seg_rows[i];
        final_buf[q] = o;
      }
    }
    std::vector<float> want(static_cast<size_t>(n * sh.num_v_heads * sh.head_v_dim));
    cpu::ref::gated_delta_rule(qkv.data(), alpha.data(), beta.data(), dt.data(), A.data(), sh, hs, want.data());
    float* out = g.out(want.size());
    g.be.gated_delta_rule(g.up(qkv), g.up(alpha), g.up(beta), g.up(dt), g.up(A), sh, ds, out);
    const double eo = max_rel(g.down(out, want.size()), want);
    double es = 0;
    for (size_t q = 0; q < nseq; ++q)
      es = std::max(es, max_rel(g.down(dev[final_buf[q]], state), host[final_buf[q]]));
    std::printf("[deltanet-cuda] case %zu: out max err/rms %.3g, state %.3g\n", ci, eo, es);
    EXPECT_LT(eo, 5e-5) << "case " << ci;
    EXPECT_LT(es, 5e-5) << "case " << ci;
  }
}

// Decode steps in step graphs (measured, captured, replayed): the segments' state pointers
// change every step (a new block's blob, or in place), and one step starts a sequence.
TEST(CudaBackend, DeltaNetInStepGraphs) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(41);
  const DeltaNetShape sh{2, 4, 32, 32};
  const int kernel = 4;
  const int64_t n = 2, row = 2 * 2 * 32 + 4 * 32;
  const size_t dstate = 4 * 32 * 32, cstate = static_cast<size_t>((kernel - 1) * row);
  const auto w = normal(rng, row * kernel, 0.5f), dt = normal(rng, 4, 0.5f);
  std::vector<float> A(4);
  for (float& x : A) x = -std::exp(rng.normal());
  float* dw = g.up(w);
  float* ddt = g.up(dt);
  float* dA = g.up(A);
  // Three state slots per sequence (a block's blob each), host twins for the reference.
  std::vector<std::vector<float>> hd(6), hc(6);
  std::vector<float*> dd(6), dc(6);
  for (int i = 0; i < 6; ++i) {
    hd[i] = normal(rng, dstate, 0.3f);
    hc[i] = normal(rng, cstate);
    dd[i] = g.up(hd[i]);
    dc[i] = g.up(hc[i]);
  }
  float* dx = g.out(n * row);
  float* dconv = g.out(n * row);
  float* dal = g.out(n * 4);
  float* dbe = g.out(n * 4);
  float* dout = g.out(n * 4 * 32);
  for (int step = 0; step < 7; ++step) {
    const auto x = normal(rng, n * row), al = normal(rng, n * 4), bt = normal(rng, n * 4);
    // Sequence 0 moves to the next slot every other step (in place in between); sequence 1
    // moves every step and starts over (no input state) at step 4.
    const int in0 = (step / 2) % 3, out0 = ((step + 1) / 2) % 3;
    const int in1 = 3 + step % 3, out1 = 3 + (step + 1) % 3;
    const bool fresh1 = step == 4;
    auto segs = [&](bool device, bool conv) {
      auto p = [&](int i) { return device ? (conv ? dc[i] : dd[i]) : (conv ? hc[i] : hd[i]).data(); };
      return std::vector<RecurrentSeg>{{0, 1, 10 + step, p(in0), p(out0)},
                                       {1, 1, 20 + step, fresh1 ? nullptr : p(in1), p(out1)}};
    };
    std::vector<float> conv(n * row), want(n * 4 * 32);
    cpu::ref::ssm_conv(x.data(), row, w.data(), kernel, segs(false, true), conv.data());
    cpu::ref::gated_delta_rule(conv.data(), al.data(), bt.data(), dt.data(), A.data(), sh, segs(false, false), want.data());
    g.be.copy_from_host(x.data(), x.size(), dx);
    g.be.copy_from_host(al.data(), al.size(), dal);
    g.be.copy_from_host(bt.data(), bt.size(), dbe);
    g.be.begin_step({91, n, 64});
    g.be.ssm_conv(dx, row, dw, kernel, segs(true, true), dconv);
    g.be.gated_delta_rule(dconv, dal, dbe, ddt, dA, sh, segs(true, false), dout);
    g.be.sigmoid_mul(dout, dal, n, 4 * 32, 1);
    g.be.end_step();
    std::vector<float> gated = want;
    cpu::ref::sigmoid_mul(gated.data(), al.data(), n, 4 * 32, 1);
    EXPECT_LT(max_rel(g.down(dout, want.size()), gated), 5e-5) << "step " << step;
    for (int i : {out0, out1}) {
      EXPECT_LT(max_rel(g.down(dd[i], dstate), hd[i]), 5e-5) << "step " << step << " slot " << i;
      EXPECT_LT(max_rel(g.down(dc[i], cstate), hc[i]), 1e-7) << "step " << step << " slot " << i;
    }
  }
}

TEST(CudaBackend, SigmoidMulMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(3);
  for (int64_t gate_dim : {int64_t{1}, int64_t{37}}) {
    const int64_t n = 1000, dim = 37;
    const auto x = normal(rng, n * dim), gt = normal(rng, n * gate_dim, 3.0f);
    std::vector<float> a = x;
    cpu::ref::sigmoid_mul(a.data(), gt.data(), n, dim, gate_dim);
    float* dx = g.up(x);
    g.be.sigmoid_mul(dx, g.up(gt), n, dim, gate_dim);
    const auto b = g.down(dx, a.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 4 * cpu::testing::kF32Eps * std::fabs(a[i]) + 1e-30);
    // Followed by the add of the gated x (the shared expert's output): one kernel when
    // gate_dim is 1; both x and y as the two ops give.
    const auto y0 = normal(rng, n * dim);
    std::vector<float> ya = y0;
    cpu::ref::add(ya.data(), a.data(), n * dim);
    float* dx2 = g.up(x);
    float* dy = g.up(y0);
    g.be.sigmoid_mul(dx2, g.up(gt), n, dim, gate_dim);
    g.be.add(dy, dx2, n * dim);
    const auto yb = g.down(dy, ya.size()), xb = g.down(dx2, a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(xb[i], a[i], 4 * cpu::testing::kF32Eps * std::fabs(a[i]) + 1e-30);
      ASSERT_NEAR(yb[i], ya[i], 8 * cpu::testing::kF32Eps * (std::fabs(ya[i]) + std::fabs(a[i])) + 1e-30);
    }
  }
}

// The GGUF bytes of a synthesized model: a preset's shape (edited where edit is given) in a
// recipe's types; empty (with a test failure) where synthesis fails.
std::vector<uint8_t> synth_bytes(const std::string& preset, const std::string& recipe_name,
                                 void (*edit)(model::Hparams&)) {
  ThreadPool pool(2);
  model::SynthOptions opts;
  opts.hp = *model::preset_hparams(preset);
  if (edit != nullptr) edit(opts.hp);
  opts.recipe = *model::find_recipe(recipe_name);
  auto w = model::synthesize(opts, pool);
  EXPECT_TRUE(w.is_ok()) << w.status().to_string();
  return w.is_ok() ? w->write_to_buffer() : std::vector<uint8_t>{};
}

const std::vector<int32_t> kPrompt = {1, 17, 300, 42, 99, 7, 256, 3, 11, 5, 77, 200, 150};

// A tiny synthesized model in F32: greedy tokens identical to the CPU reference; logits close.
void check_model(const std::string& preset, const std::string& recipe_name, bool expect_same_tokens,
                 void (*edit)(model::Hparams&) = nullptr) {
  const std::vector<uint8_t> bytes = synth_bytes(preset, recipe_name, edit);
  ASSERT_FALSE(bytes.empty());
  const std::vector<int32_t>& prompt = kPrompt;
  engine::GenerateOptions go;
  go.max_tokens = 24;
  go.stop_at_eog = false;
  go.prefill_chunk = 9;  // a prefill chunk (cuBLAS path), then a short one (matrix-vector path)
  std::vector<int32_t> toks[2];
  std::vector<float> logits[2];
  for (int b = 0; b < 2; ++b) {
    std::unique_ptr<Backend> be;
    if (b == 0)
      be = std::make_unique<CpuBackend>(2, true);
    else
      be = std::make_unique<CudaBackend>();
    auto file = gguf::File::parse(bytes);
    ASSERT_TRUE(file.is_ok());
    auto m = model::Model::from_file(std::move(file).value(), *be);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    engine::Generator gen(**m, 128, DType::kF32, 4);
    auto r = gen.generate(prompt, go, [](const engine::SampleResult&) { return true; });
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    toks[b] = *r;
    engine::Generator gen2(**m, 128, DType::kF32, 16);
    auto l = gen2.logits_per_position(prompt, 10, 5);
    ASSERT_TRUE(l.is_ok());
    logits[b] = *l;
  }
  EXPECT_EQ(toks[1].size(), 24u);
  if (expect_same_tokens) {
    EXPECT_EQ(toks[1], toks[0]) << preset << " " << recipe_name;
  }
  // F32: f32 rounding only. Quantized: batch-1 products on int8 activations (0.5% rms per
  // product), compounded over layers and amplified by random weights, as the CPU fast path
  // (tests/golden: rms 5%).
  EXPECT_LT(rel_err(logits[1], logits[0]), expect_same_tokens ? 1e-4 : 0.1)
      << preset << " " << recipe_name;
}

TEST(CudaBackend, TinyModelGreedyMatchesCpu) {
  REQUIRE_GPU();
  check_model("tiny", "F32", true);
  check_model("tiny-moe", "F32", true);
  check_model("tiny", "Q4_K_M", false);
  check_model("tiny", "Q8_0", false);
  check_model("tiny-moe", "Q8_0", false);  // int8 expert products, gate/up joined
}

TEST(CudaBackend, TinyHybridGreedyMatchesCpu) {
  REQUIRE_GPU();
  check_model("qwen3.5-tiny", "F32", true);
  check_model("qwen3.5-tiny-moe", "F32", true);
}

// The hybrid MoE at sizes that take the one-token fusions (decode_fused.cu): a dim of 256
// (the residual with the gated shared expert, its gate's product and the experts' weighted
// sum in the next norm's kernel) and value heads of 32 (the DeltaNet output's gated norm with
// its int8 copy); in F32 (same tokens) and Q8_0 (int8 products).
void mid_hybrid(model::Hparams& hp) {
  hp.dim = 256;
  hp.head_dim = 64;
  hp.delta = {4, 2, 4, 32, 32};
  hp.expert_ffn_dim = 64;
  hp.shared_expert_ffn_dim = 128;
}

TEST(CudaBackend, MidHybridMoeMatchesCpu) {
  REQUIRE_GPU();
  check_model("qwen3.5-tiny-moe", "F32", true, mid_hybrid);
  check_model("qwen3.5-tiny-moe", "Q8_0", false, mid_hybrid);
  check_model("qwen3.5-tiny", "Q4_K_M", false, [](model::Hparams& hp) {
    mid_hybrid(hp);
    hp.ffn_dim = 512;
  });
}

// Programmatic dependent launch changes when kernels start, never what they compute: the
// logits and greedy tokens of a decode (step graphs: eager, captured, replayed) are the same
// under every launch mode (kernels.h: off; the small kernels' early launches with the Q8_0
// products' early loads, with the L2 prefetch, with every type's early loads, with none; none
// of them), for a dense Q4_K_M model at sizes that take the one-token fusions and for the
// hybrid MoE in Q8_0.
void check_launch_modes(const std::string& preset, const std::string& recipe_name,
                        void (*edit)(model::Hparams&)) {
  const std::vector<uint8_t> bytes = synth_bytes(preset, recipe_name, edit);
  ASSERT_FALSE(bytes.empty());
  const std::vector<int32_t>& prompt = kPrompt;
  engine::GenerateOptions go;
  go.max_tokens = 16;
  go.stop_at_eog = false;
  const int saved = pdl_mode();
  std::vector<int32_t> toks0;
  std::vector<float> logits0;
  for (int mode : {0, 1, 2, 3, 4, 5}) {
    set_pdl_mode(mode);
    CudaBackend be;
    auto file = gguf::File::parse(bytes);
    ASSERT_TRUE(file.is_ok());
    auto m = model::Model::from_file(std::move(file).value(), be);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    engine::Generator gen(**m, 128, DType::kF16, 4);
    auto r = gen.generate(prompt, go, [](const engine::SampleResult&) { return true; });
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    engine::Generator gen2(**m, 128, DType::kF16, 16);
    auto l = gen2.logits_per_position(prompt, 4, 4);  // 10 one-token decode steps
    ASSERT_TRUE(l.is_ok());
    if (mode == 0) {
      toks0 = *r;
      logits0 = *l;
      continue;
    }
    EXPECT_EQ(*r, toks0) << preset << " " << recipe_name << " mode " << mode;
    EXPECT_LT(rel_err(*l, logits0), 1e-6) << preset << " " << recipe_name << " mode " << mode;
  }
  set_pdl_mode(saved);
}

TEST(CudaBackend, LaunchModesGiveTheSameDecode) {
  REQUIRE_GPU();
  check_launch_modes("tiny", "Q4_K_M", [](model::Hparams& hp) {
    hp.dim = 256;
    hp.head_dim = 64;
    hp.ffn_dim = 512;
  });
  check_launch_modes("qwen3.5-tiny-moe", "Q8_0", mid_hybrid);
}

}  // namespace
}  // namespace strata::backend::cuda
