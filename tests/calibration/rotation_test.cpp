// Hadamard constructions (exact orthogonality in integers, the fast butterflies against a float64 matrix product)
// and the rotations' exactness: a rotated FP model (offline residual rotation, per-head Hadamards, online down_proj
// and q/k Hadamards) computes the same function as the original, in float64, on both bundled models.
#include "calibration/rotation.h"

#include <random>

#include <gtest/gtest.h>

#include "calibration/hadamard.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "formats/dataset.h"
#include "kernels/error.h"

namespace {

using namespace illm::calib;
const std::filesystem::path kModels = std::filesystem::path(ILLM_SOURCE_DIR) / "models";

// H·Hᵀ = g·I checked entry by entry in int64, and every entry is ±2^j (j ≥ 0: no zero inside a Kronecker form).
void expect_orthogonal(const HadamardPlan& plan) {
  const int64_t n = plan.n;
  const std::vector<int32_t> h = hadamard_matrix(plan);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      int64_t dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += int64_t{h[i * n + k]} * h[j * n + k];
      ASSERT_EQ(dot, i == j ? plan.gain2 : 0) << plan.describe() << " rows " << i << ", " << j;
    }
  if (plan.kind != HadamardPlan::Kind::kWeightedBlocks) {
    for (int32_t v : h) ASSERT_TRUE(v == 1 || v == -1) << plan.describe();
  }
}

TEST(Hadamard, ConstructionsAreExactlyOrthogonal) {
  const struct {
    int64_t n;
    HadamardPlan::Kind kind;
    const char* describe;
  } cases[] = {{1, HadamardPlan::Kind::kSylvester, "Sylvester(1)"},
               {2, HadamardPlan::Kind::kSylvester, "Sylvester(2)"},
               {8, HadamardPlan::Kind::kSylvester, "Sylvester(8)"},
               {512, HadamardPlan::Kind::kSylvester, "Sylvester(512)"},
               {12, HadamardPlan::Kind::kPaley, "Paley(12) x Sylvester(1)"},
               {20, HadamardPlan::Kind::kPaley, "Paley(20) x Sylvester(1)"},
               {192, HadamardPlan::Kind::kPaley, "Paley(12) x Sylvester(16)"},       // tinybible hidden
               {88, HadamardPlan::Kind::kPaley, "Paley(44) x Sylvester(2)"},
               {172, HadamardPlan::Kind::kWeightedBlocks, "blocks(128 + 32x2 + 8x4 + 2x8 + 2x8)"},  // stories260K C_f
               {43, HadamardPlan::Kind::kWeightedBlocks, "blocks(16 + 16 + 4x2 + 4x2 + 1x4 + 1x4 + 1x4)"},
               {6, HadamardPlan::Kind::kWeightedBlocks, "blocks(4 + 1x2 + 1x2)"}};
  for (const auto& c : cases) {
    const HadamardPlan plan = plan_hadamard(c.n);
    EXPECT_EQ(plan.kind, c.kind) << c.n;
    EXPECT_EQ(plan.describe(), c.describe) << c.n;
    expect_orthogonal(plan);
  }
  // Paley's matrix is I + S with S skew-symmetric and a first row of ones.
  const HadamardPlan p12 = plan_hadamard(12);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(p12.base_matrix[i], 1);
    for (int64_t j = 0; j < 12; ++j)
      if (i != j) {
        EXPECT_EQ(p12.base_matrix[i * 12 + j], -p12.base_matrix[j * 12 + i]);
      }
  }
  EXPECT_THROW(plan_hadamard(0), illm::Error);
}

// The butterflies equal the explicit matrix times the vector (float64, exact for these magnitudes).
TEST(Hadamard, FastTransformEqualsMatrixProduct) {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int64_t> code(-32767, 32767);
  for (int64_t n : {1, 2, 8, 12, 43, 64, 172, 192, 512}) {
    const HadamardPlan plan = plan_hadamard(n);
    const std::vector<int32_t> h = hadamard_matrix(plan);
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<int64_t> x(n);
      for (auto& v : x) v = code(rng);
      std::vector<int64_t> y = x;
      hadamard_transform(plan, y.data());
      for (int64_t i = 0; i < n; ++i) {
        double ref = 0;
        for (int64_t k = 0; k < n; ++k) ref += static_cast<double>(h[i * n + k]) * static_cast<double>(x[k]);
        ASSERT_EQ(static_cast<double>(y[i]), ref) << plan.describe() << " row " << i;
        ASSERT_LE(std::abs(y[i]), plan.row_l1 * 32767);
      }
    }
  }
}

// Sizes too large for an explicit matrix (LLaMA-7B's 11008 = 172·64, 4096, 5120): ⟨Hx, Hy⟩ = g·⟨x, y⟩ exactly for
// random integer vectors, i.e. H/√g is orthogonal.
TEST(Hadamard, LargeSizesPreserveInnerProducts) {
  std::mt19937_64 rng(9);
  std::uniform_int_distribution<int64_t> code(-255, 255);
  const char* expected[] = {"Sylvester(4096)", "Paley(20) x Sylvester(256)",
                            "blocks(8192 + 2048x2 + 512x4 + 128x8 + 128x8)"};
  int index = 0;
  for (int64_t n : {4096, 5120, 11008}) {
    const HadamardPlan plan = plan_hadamard(n);
    EXPECT_EQ(plan.describe(), expected[index++]);
    std::vector<int64_t> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = code(rng);
      y[i] = code(rng);
    }
    int64_t xy = 0, xx = 0;
    for (int64_t i = 0; i < n; ++i) {
      xy += x[i] * y[i];
      xx += x[i] * x[i];
    }
    std::vector<int64_t> hx = x, hy = y;
    hadamard_transform(plan, hx.data());
    hadamard_transform(plan, hy.data());
    __int128 hxy = 0, hxx = 0;
    for (int64_t i = 0; i < n; ++i) {
      hxy += static_cast<__int128>(hx[i]) * hy[i];
      hxx += static_cast<__int128>(hx[i]) * hx[i];
    }
    EXPECT_TRUE(hxy == static_cast<__int128>(plan.gain2) * xy) << plan.describe();
    EXPECT_TRUE(hxx == static_cast<__int128>(plan.gain2) * xx) << plan.describe();
  }
  std::vector<int64_t> big(8, int64_t{1} << 61);
  EXPECT_THROW(hadamard_transform(plan_hadamard(8), big.data()), illm::Error);
}

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
