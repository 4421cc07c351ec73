// The rotations' exactness: a rotated FP model (offline residual rotation, per-head Hadamards, online down_proj
// and q/k Hadamards) computes the same function as the original, in float64, on both bundled models.
// (The Hadamard constructions themselves are tested in tests/kernels/hadamard_test.cpp.)
#include "calibration/rotation.h"

#include <random>

#include <gtest/gtest.h>

#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/row_rotation.h"
#include "formats/dataset.h"
#include "kernels/error.h"

namespace {

using namespace illm::calib;
const std::filesystem::path kModels = std::filesystem::path(ILLM_SOURCE_DIR) / "models";

TEST(Rotation, ResidualRotationsAreOrthogonalAndSeeded) {
  for (auto kind : {illm::ResidualRotation::kHadamard, illm::ResidualRotation::kOrthogonal}) {
    for (int64_t c : {64, 192}) {
      const torch::Tensor q = residual_rotation(kind, c, 2);
      EXPECT_LT((q.t().matmul(q) - torch::eye(c, torch::kFloat64)).abs().max().item<double>(), 1e-12);
      EXPECT_TRUE(torch::equal(q, residual_rotation(kind, c, 2)));
      EXPECT_FALSE(torch::equal(q, residual_rotation(kind, c, 3)));
    }
  }
  EXPECT_FALSE(residual_rotation(illm::ResidualRotation::kNone, 64, 2).defined());
}

// The recipe's rotation_seed, when given, seeds Q instead of its seed (which still seeds the training): the
// converter's row rotation equals rows·Q for Q = residual_rotation(kind, C, rotation_seed).
TEST(Rotation, RotationSeedSeedsTheMatrixInsteadOfTheSeed) {
  const int64_t c = 64;
  std::vector<float> rows(static_cast<size_t>(c) * 3);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(static_cast<int>(i * 7 % 11) - 5) / 4;
  auto rotated = [&](const char* json) {
    std::vector<float> r = rows;
    ResidualRowRotation(illm::parse_recipe_json(json, "t"), c).rotate_embedding_rows(r);
    return r;
  };
  auto expected = [&](uint64_t seed) {
    const torch::Tensor x = torch::from_blob(rows.data(), {3, c}, torch::kFloat32).to(torch::kFloat64);
    const torch::Tensor y = x.matmul(residual_rotation(illm::ResidualRotation::kOrthogonal, c, seed)).to(torch::kFloat32);
    return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
  };
  EXPECT_EQ(rotated(R"({"method": "rtn", "rotation": "orthogonal", "seed": 5})"), expected(5));
  EXPECT_EQ(rotated(R"({"method": "rtn", "rotation": "orthogonal", "seed": 5, "rotation_seed": 9})"), expected(9));
  EXPECT_NE(expected(5), expected(9));
}

BlockShape shape_of(const illm::formats::LlamaConfig& c) {
  return {c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim(),
          c.rms_norm_eps};
}

torch::Tensor first_tokens(const std::filesystem::path& model, int64_t n) {
  const auto cfg = illm::formats::load_llama_config(model);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % cfg.vocab_size);  // any ids: the identity is exact
  return torch::tensor(ids).reshape({1, n});
}

// Whole model: offline rotations (residual stream + heads) leave the FP logits unchanged (float64, 1e-9 relative).
TEST(Rotation, RotatedModelComputesTheSameLogits) {
  for (const char* name : {"stories260K", "tinybible"}) {
    for (auto kind : {illm::ResidualRotation::kOrthogonal, illm::ResidualRotation::kHadamard}) {
      const LlamaWeights w = load_llama_weights(kModels / name, torch::kFloat64);
      LlamaWeights r = load_llama_weights(kModels / name, torch::kFloat64);
      illm::Recipe recipe;
      recipe.rotation = kind;
      recipe.rotate_heads = true;
      rotate_model(r, recipe);
      const torch::Tensor ids = first_tokens(kModels / name, 24);
      const torch::Tensor expected = llama_forward(w, ids), got = llama_forward(r, ids);
      EXPECT_LT((got - expected).abs().max().item<double>(), 1e-9 * expected.abs().max().item<double>()) << name;
      // Not vacuous: the weights, the embedding and the head changed, the norms are ones.
      EXPECT_GT((r.layers[0].wq - w.layers[0].wq).abs().max().item<double>(), 1e-3) << name;
      EXPECT_GT((r.layers[0].wv - w.layers[0].wv).abs().max().item<double>(), 1e-3) << name;
      EXPECT_GT((r.embed - w.embed).abs().max().item<double>(), 1e-3) << name;
      EXPECT_FALSE(r.tied_head()) << name;
      EXPECT_EQ(r.layers[0].attn_norm.min().item<double>(), 1.0);
    }
  }
}

// One block with everything: residual rotation, heads, the online down_proj Hadamard folded into w_down and applied
// by the fake-quant block, the online q/k Hadamard; quantizers off. block'(x·Q) = block(x)·Q to 1e-5 (the online
// matrices are float32). stories260K's C_f = 172 exercises the weighted block-diagonal, tinybible's d = 32 and
// C = 192 the Sylvester and Paley ones.
TEST(Rotation, OnlineHadamardsKeepTheBlockExact) {
  for (const char* name : {"stories260K", "tinybible"}) {
    const LlamaWeights w = load_llama_weights(kModels / name, torch::kFloat64);
    const auto& cfg = w.config;
    const BlockShape shape = shape_of(cfg);
    const torch::Tensor q = residual_rotation(illm::ResidualRotation::kOrthogonal, cfg.hidden_size, 4);
    const torch::Tensor ids = first_tokens(kModels / name, 16);
    const RotaryCosSin rot = rotary_cos_sin(cfg, 16, torch::kFloat64);
    const torch::Tensor x = embed_tokens(w, ids);
    FakeQuantSettings off;
    off.quantize_activations = false;
    attach_online_hadamards(off, true, true, shape);
    BlockWeights b = rotate_block(w.layers[1], q, true, shape);
    b.w_down = fold_online_down(b.w_down, *off.hadamard_down);
    const torch::Tensor expected = decoder_block_forward(cfg, w.layers[1], x, rot).matmul(q);
    const torch::Tensor got = fake_quant_block_forward(b, {}, x.matmul(q), rot, shape, off);
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-5 * expected.abs().max().item<double>()) << name;
    // The integer-code simulation (executor points) is the 16-bit rounding of the same transform.
    const torch::Tensor act = torch::randn({3, shape.intermediate}, torch::kFloat64);
    const torch::Tensor exact = apply_online_hadamard(act, *off.hadamard_down, false);
    const torch::Tensor codes = apply_online_hadamard(act, *off.hadamard_down, true);
    const double step = act.abs().max().item<double>() / 32767;
    EXPECT_LT((codes - exact).abs().max().item<double>(), step * std::sqrt(double(shape.intermediate))) << name;
    EXPECT_GT((codes - exact).abs().max().item<double>(), 0.0) << name;
  }
}

}  // namespace
