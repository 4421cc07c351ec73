// FP reference model: against the llama2.c golden logits, the float64 reference perplexities, and hand-derived
// properties of the pieces (RMSNorm, rotate-half, RoPE relativity, causality, GQA, block-at-a-time).
#include <cmath>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "calibration/fp_model.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/threads.h"
#include "formats/dataset.h"
#include "formats/tokenizer.h"
#include "kernels/error.h"

namespace {

using namespace illm;
using namespace illm::calib;

const std::string kStories = std::string(ILLM_SOURCE_DIR) + "/models/stories260K";
const std::string kTinyBible = std::string(ILLM_SOURCE_DIR) + "/models/tinybible";

struct Golden {
  std::vector<int32_t> ids;
  std::vector<std::vector<double>> logits;
};

Golden read_golden() {
  std::ifstream in(kStories + "/reference_logits.json");
  auto j = nlohmann::json::parse(in);
  return {j.at("input_ids").get<std::vector<int32_t>>(), j.at("logits").get<std::vector<std::vector<double>>>()};
}

// Perplexity with an independent float64 log-softmax (not converter/metrics).
double perplexity(const FpModel& model, const std::vector<std::vector<int32_t>>& windows) {
  const auto V = static_cast<size_t>(model.config().vocab_size);
  double nll = 0;
  long count = 0;
  model.for_each_logits(windows, 16, [&](size_t w, std::span<const float> logits) {
    const auto& ids = windows[w];
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      auto row = logits.subspan(t * V, V);
      double mx = -1e300, sum = 0;
      for (float x : row) mx = std::max(mx, double(x));
      for (float x : row) sum += std::exp(double(x) - mx);
      nll += mx + std::log(sum) - row[size_t(ids[t + 1])];
      ++count;
    }
  });
  return std::exp(nll / double(count));
}

class FpModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { set_thread_count(1); }  // spinning OpenMP threads hurt on a shared box
};

TEST_F(FpModelTest, Float64MatchesLlama2cGoldenLogits) {
  const auto golden = read_golden();
  const auto model = FpModel::load(kStories, /*float64=*/true);
  const auto V = size_t(model->config().vocab_size);
  ASSERT_EQ(golden.logits.size(), golden.ids.size());
  const auto logits = model->logits(golden.ids);
  ASSERT_EQ(logits.size(), golden.ids.size() * V);
  double max_diff = 0;
  for (size_t t = 0; t < golden.ids.size(); ++t) {
    ASSERT_EQ(golden.logits[t].size(), V);
    for (size_t v = 0; v < V; ++v) max_diff = std::max(max_diff, std::abs(logits[t * V + v] - golden.logits[t][v]));
  }
  RecordProperty("max_abs_diff_vs_golden", std::to_string(max_diff));
  std::printf("float64 vs reference_logits.json: max |diff| = %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-4);
}

TEST_F(FpModelTest, Float32MatchesFloat64Path) {
  const auto ids = read_golden().ids;
  const auto f64 = FpModel::load(kStories, true)->logits(ids);
  const auto f32 = FpModel::load(kStories, false)->logits(ids);
  ASSERT_EQ(f32.size(), f64.size());
  double max_diff = 0;
  for (size_t i = 0; i < f32.size(); ++i) max_diff = std::max(max_diff, double(std::abs(f32[i] - f64[i])));
  std::printf("float32 vs float64 path: max |diff| = %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-4);
}

TEST_F(FpModelTest, Stories260KEvalPerplexityMatchesFloat64Reference) {
  const auto model = FpModel::load(kStories, true);
  const auto windows = formats::load_windows(kStories + "/eval.jsonl", nullptr, std::nullopt,
                                             model->config().vocab_size, model->config().max_position_embeddings);
  ASSERT_EQ(windows.predicted_tokens(), 16320);
  const double ppl = perplexity(*model, windows.sequences);
  std::printf("stories260K eval.jsonl FP ppl (float64) = %.5f\n", ppl);
  EXPECT_NEAR(ppl, 17.9075, 0.005);
  EXPECT_NEAR(perplexity(*FpModel::load(kStories, false), windows.sequences), 17.9075, 0.005);
}

TEST_F(FpModelTest, TinyBibleTestTextPerplexity) {
  const auto model = FpModel::load(kTinyBible, false);
  const auto tokenizer = formats::Tokenizer::load(kTinyBible + "/tokenizer.model");
  const auto windows = formats::load_windows(kTinyBible + "/test.txt", &tokenizer, 256, model->config().vocab_size,
                                             model->config().max_position_embeddings);
  const double ppl = perplexity(*model, windows.sequences);
  std::printf("tinybible test.txt FP ppl (float32, seq 256) = %.5f\n", ppl);
  EXPECT_NEAR(ppl, 14.8467, 0.002);
}

TEST_F(FpModelTest, BatchedEqualsOneByOne) {
  const auto model = FpModel::load(kStories, false);
  std::vector<std::vector<int32_t>> seqs = {{1, 5, 9, 200, 7}, {1, 300, 2, 4, 8}, {1, 17, 18}, {1, 400, 401}};
  std::vector<std::vector<float>> batched(seqs.size());
  model->for_each_logits(seqs, 16, [&](size_t i, std::span<const float> l) { batched[i].assign(l.begin(), l.end()); });
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto single = model->logits(seqs[i]);
    ASSERT_EQ(single.size(), batched[i].size());
    for (size_t k = 0; k < single.size(); ++k) ASSERT_NEAR(single[k], batched[i][k], 1e-4);  // float32 GEMM blocking differs
  }
}

TEST_F(FpModelTest, BadInputThrowsIllmError) {
  const auto model = FpModel::load(kStories, false);
  const std::vector<int32_t> out_of_vocab = {1, 512};
  EXPECT_THROW(model->logits(out_of_vocab), Error);
  const std::vector<int32_t> negative = {1, -3};
  EXPECT_THROW(model->logits(negative), Error);
  EXPECT_THROW(FpModel::load(std::string(ILLM_SOURCE_DIR) + "/models/no-such-model"), Error);
}

// ---- pieces, hand-derived -----------------------------------------------------------------------------------

TEST(LlamaForward, RmsNormHandComputed) {
  // x = [3, 4]: mean(x²) = 12.5, rsqrt = 0.28284271; weight [1, 2] → [0.84852814, 2.26274170].
  auto x = torch::tensor({3.0, 4.0}, torch::kFloat64);
  auto y = rms_norm(x, torch::tensor({1.0, 2.0}, torch::kFloat64), 0.0);
  EXPECT_NEAR(y[0].item<double>(), 0.848528137423857, 1e-12);
  EXPECT_NEAR(y[1].item<double>(), 2.262741699796952, 1e-12);
}

TEST(LlamaForward, RotateHalf) {
  auto y = rotate_half(torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kFloat64));
  const std::vector<double> expect = {-3, -4, 1, 2};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i].item<double>(), expect[size_t(i)]);
}

TEST(LlamaForward, RopeScoresDependOnlyOnPositionDifference) {
  const auto cfg = formats::load_llama_config(kStories);
  const int64_t d = cfg.head_dim();
  auto rot = rotary_cos_sin(cfg, 40, torch::kFloat64);
  torch::manual_seed(3);
  auto q = torch::randn({d}, torch::kFloat64), k = torch::randn({d}, torch::kFloat64);
  auto score = [&](int64_t pq, int64_t pk) {
    RotaryCosSin at_q{rot.cos[pq], rot.sin[pq]}, at_k{rot.cos[pk], rot.sin[pk]};
    return (apply_rotary(q, at_q) * apply_rotary(k, at_k)).sum().item<double>();
  };
  EXPECT_NEAR(score(7, 3), score(30, 26), 1e-10);
  EXPECT_NEAR(score(0, 0), (q * k).sum().item<double>(), 1e-12);  // position 0 is the identity
  // Rotation keeps the norm.
  RotaryCosSin at_9{rot.cos[9], rot.sin[9]};
  EXPECT_NEAR(apply_rotary(q, at_9).norm().item<double>(), q.norm().item<double>(), 1e-12);
}

TEST(LlamaForward, GroupedQueryAttentionSharesKvHeads) {
  torch::manual_seed(5);
  const int64_t B = 1, H = 4, Hkv = 2, T = 6, d = 8;
  auto q = torch::randn({B, H, T, d}, torch::kFloat64);
  auto k = torch::randn({B, Hkv, T, d}, torch::kFloat64), v = torch::randn({B, Hkv, T, d}, torch::kFloat64);
  auto grouped = causal_attention(q, k, v);
  // Query heads 0,1 read kv head 0; heads 2,3 read kv head 1 (HF repeat_kv).
  auto expanded_k = torch::stack({k[0][0], k[0][0], k[0][1], k[0][1]}).unsqueeze(0);
  auto expanded_v = torch::stack({v[0][0], v[0][0], v[0][1], v[0][1]}).unsqueeze(0);
  EXPECT_TRUE(torch::allclose(grouped, causal_attention(q, expanded_k, expanded_v), 0, 1e-12));
  // Causal: the first position attends only to itself, so its context is its own value.
  EXPECT_TRUE(torch::allclose(grouped[0][3][0], v[0][1][0], 0, 1e-12));
}

TEST(LlamaForward, CausalPrefixLogitsUnchanged) {
  const auto w = load_llama_weights(kStories, torch::kFloat64);
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({1, 461, 410, 306, 309, 264, 304, 304, 331, 340}, torch::kInt64).unsqueeze(0);
  auto full = llama_forward(w, ids);
  auto prefix = llama_forward(w, ids.narrow(1, 0, 4));
  EXPECT_TRUE(torch::allclose(full.narrow(1, 0, 4), prefix, 0, 1e-12));
}

TEST(LlamaForward, BlocksRunOneAtATimeWithTaps) {
  const auto w = load_llama_weights(kStories, torch::kFloat32);
  ASSERT_TRUE(w.tied_head());
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({1, 461, 410, 306, 309, 264}, torch::kInt64).view({1, 6});
  auto rot = rotary_cos_sin(w.config, 6, w.dtype);
  auto h = embed_tokens(w, ids);
  std::vector<std::string> seen;
  for (size_t l = 0; l < w.layers.size(); ++l)
    h = decoder_block_forward(w.config, w.layers[l], h, rot, [&](BlockTap tap, const torch::Tensor& x) {
      if (l == 0) seen.push_back(block_tap_name(tap) + std::string(":") + std::to_string(x.size(-1)));
    });
  EXPECT_EQ(seen, (std::vector<std::string>{"attn_input:64", "query:8", "key:8", "value:8", "attn_probs:6",
                                            "attn_context:64", "ffn_input:64", "ffn_hidden:172"}));
  EXPECT_TRUE(torch::allclose(lm_head_forward(w, h), llama_forward(w, ids), 0, 1e-6));
}

TEST(LlamaForward, UntiedHeadIsSeparateTensor) {
  const auto w = load_llama_weights(kTinyBible, torch::kFloat32);
  EXPECT_FALSE(w.tied_head());
  EXPECT_EQ(w.lm_head.sizes(), (std::vector<int64_t>{1024, 192}));
}

}  // namespace
