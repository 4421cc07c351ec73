// FSBR pipeline on the bundled stories260K: folding equivalence, RTN W8A8 close to FP, a tiny run lowers the
// block loss, determinism.
#include "calibration/fsbr.h"

#include <gtest/gtest.h>

#include "calibration/calibrate.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"

namespace {

using namespace illm::calib;
const std::filesystem::path kModel = std::filesystem::path(ILLM_SOURCE_DIR) / "models" / "stories260K";

// Folding random smoothing vectors (sites 1–6, RoPE pairs tied) into the weights, with every quantizer off,
// reproduces the FP block (the independent HF-style forward of llama_forward.h) to 1e-5; in float64.
TEST(Fsbr, FoldingWithoutQuantizationIsExact) {
  const LlamaWeights w = load_llama_weights(kModel, torch::kFloat64);
  const auto& cfg = w.config;
  const BlockShape shape{cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                         cfg.head_dim(), cfg.rms_norm_eps};
  const auto eval = read_token_jsonl(kModel / "eval.jsonl");
  const torch::Tensor ids = torch::tensor(std::vector<int64_t>(eval[0].begin(), eval[0].begin() + 64)).reshape({1, 64});
  const RotaryCosSin rot = rotary_cos_sin(cfg, 64, torch::kFloat64);
  torch::manual_seed(7);
  SmoothParams s = SmoothParams::identity(shape, true);
  for (torch::Tensor* v : {&s.s1, &s.s2, &s.s3, &s.s4, &s.s5, &s.s6})
    *v = torch::exp(torch::randn(v->sizes(), torch::kFloat64) * 0.7);  // positive, spread 0.1..10
  FakeQuantSettings off;
  off.quantize_activations = false;
  torch::Tensor h = embed_tokens(w, ids);
  for (int l = 0; l < 2; ++l) {
    const FoldedBlock folded = fold_smoothing(w.layers[l], s, shape);
    const torch::Tensor expected = decoder_block_forward(cfg, w.layers[l], h, rot);
    const torch::Tensor got = fake_quant_block_forward(folded.weights, folded.alpha, h, rot, shape, off);
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-5) << "layer " << l;
    // The folded weights really differ (the test is not vacuous).
    EXPECT_GT((folded.weights.w_up - w.layers[l].w_up).abs().max().item<double>(), 1e-3);
    h = expected;
  }
}

// Per-channel 8-bit weights and per-token 8-bit activations stay close to FP (llama.cpp's Q8_0 gives +4.6 % on
// the full eval set, fixtures README); 4 windows.
TEST(Fsbr, RtnW8A8PerplexityCloseToFp) {
  auto eval = read_token_jsonl(kModel / "eval.jsonl");
  eval.resize(4);
  const auto calib = read_token_jsonl(kModel / "calib.jsonl");
  const illm::Recipe r = illm::parse_recipe_json(R"({"method": "rtn", "w_bits": 8, "a_bits": 8, "samples": 2})", "t");
  CalibrateOptions opt;
  opt.show_progress = false;
  const CalibratedModel m = calibrate(kModel, r, calib, nullptr, opt);
  const double fp = fp_perplexity(kModel, eval);
  const double q = fake_quant_perplexity(m, eval);
  EXPECT_GT(fp, 10.0);
  EXPECT_LT(fp, 30.0);
  EXPECT_LT(q, fp * 1.10) << "fp " << fp;
  EXPECT_GT(q, fp * 0.95) << "fp " << fp;
}

illm::Recipe tiny_fsbr() {
  return illm::parse_recipe_json(
      R"({"method": "fsbr", "w_bits": 4, "a_bits": 4, "epochs": 2, "samples": 8, "seq_len": 64, "seed": 3})", "t");
}

TEST(Fsbr, OneEpochLowersBlockLoss) {
  const auto calib = read_token_jsonl(kModel / "calib.jsonl");
  CalibrationReport report;
  CalibrateOptions opt;
  opt.show_progress = false;
  const CalibratedModel m = calibrate(kModel, tiny_fsbr(), calib, &report, opt);
  ASSERT_EQ(report.blocks.size(), 5u);
  double before = 0, after = 0;
  for (size_t l = 0; l < report.blocks.size(); ++l) {
    // Best-epoch selection never keeps parameters clearly worse than the initial ones.
    EXPECT_LT(report.blocks[l].loss_after, report.blocks[l].loss_before * 1.01) << "block " << l;
    before += report.blocks[l].loss_before;
    after += report.blocks[l].loss_after;
  }
  EXPECT_GE(report.blocks[0].best_epoch, 0);  // the first block learns something
  EXPECT_LT(report.blocks[0].loss_after, report.blocks[0].loss_before);
  EXPECT_LT(after, before);
  // Output structure: codes in range, α kept, group = row.
  const CalibratedLinear& q = m.layers[0].q_proj;
  EXPECT_EQ(q.group_size, q.in_features);
  EXPECT_EQ(q.codes.size(), static_cast<size_t>(q.out_features) * q.in_features);
  for (uint8_t c : q.codes) EXPECT_LE(c, 15);
  for (int32_t z : q.zero_points) EXPECT_TRUE(z >= 0 && z <= 15);
  EXPECT_EQ(m.layers[0].swiglu_alpha.size(), static_cast<size_t>(m.intermediate));
}

TEST(Fsbr, SameSeedGivesIdenticalFoldedWeights) {
  const auto calib = read_token_jsonl(kModel / "calib.jsonl");
  CalibrateOptions opt;
  opt.show_progress = false;
  illm::Recipe r = tiny_fsbr();
  r.samples = 2;
  const CalibratedModel a = calibrate(kModel, r, calib, nullptr, opt);
  const CalibratedModel b = calibrate(kModel, r, calib, nullptr, opt);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].down_proj.folded_weight, b.layers[l].down_proj.folded_weight) << l;
    EXPECT_EQ(a.layers[l].q_proj.codes, b.layers[l].q_proj.codes) << l;
    EXPECT_EQ(a.layers[l].attn_norm, b.layers[l].attn_norm) << l;
    EXPECT_EQ(a.layers[l].swiglu_alpha, b.layers[l].swiglu_alpha) << l;
  }
}

}  // namespace
