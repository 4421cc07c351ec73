// Fake quantizers: hand-derived cases (docs/method.md §1.3: s = (max − min)/Q, z = round(−min/s), round half away).
#include "calibration/quantizers.h"

#include <gtest/gtest.h>

#include "kernels/error.h"

namespace {

using namespace illm::calib;

torch::Tensor t(std::vector<float> v) { return torch::tensor(v); }

void expect_near(const torch::Tensor& a, std::vector<float> b, double tol = 1e-6) {
  ASSERT_EQ(a.numel(), static_cast<int64_t>(b.size()));
  const torch::Tensor af = a.reshape({-1}).to(torch::kFloat32);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_NEAR(af[i].item<float>(), b[i], tol) << "index " << i;
}

TEST(Quantizers, RoundHalfAwayFromZero) {
  expect_near(round_half_away(t({0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.49f, -1.2f})), {1, -1, 2, 3, -3, 0, -1});
}

TEST(Quantizers, RoundSteHasIdentityGradient) {
  torch::Tensor x = t({0.3f, 1.7f, -2.5f}).requires_grad_(true);
  round_ste(x).sum().backward();
  expect_near(x.grad(), {1, 1, 1});
}

// x = [−1, 0, 0.5, 2], 4 bits: s = 3/15 = 0.2, z = 5, x/s = [−5, 0, 2.5, 10] → codes [0, 5, 8, 15]
// (2.5 rounds away from zero to 3) → x̂ = [−1, 0, 0.6, 2].
TEST(Quantizers, PerTokenAsymmetricHandCase) {
  expect_near(fake_quant_per_token(t({-1, 0, 0.5f, 2}).reshape({1, 4}), 4), {-1, 0, 0.6f, 2});
}

// All-positive row: the range is widened to include 0 (lo = 0), 2 bits: s = 1, z = 0 → exact.
TEST(Quantizers, RangeWidenedToIncludeZero) {
  expect_near(fake_quant_per_token(t({1, 2, 3}).reshape({1, 3}), 2), {1, 2, 3});
  // all-negative row [−3, −1.5]: hi = 0, s = 1, z = 3; −1.5 → round(−1.5) = −2 → −2.
  expect_near(fake_quant_per_token(t({-3, -1.5f}).reshape({1, 2}), 2), {-3, -2});
}

// Each row (token) has its own range.
TEST(Quantizers, PerTokenRowsIndependent) {
  expect_near(fake_quant_per_token(t({0, 3, 0, 30}).reshape({2, 2}), 2), {0, 3, 0, 30});
}

// Symmetric 8 bits: s = 1/127; 0.5·127 = 63.5 → 64.
TEST(Quantizers, PerTokenSymmetric) {
  expect_near(fake_quant_per_token(t({-1, 0.5f}).reshape({1, 2}), 8, true), {-1, 64.0f / 127.0f});
}

TEST(Quantizers, SixteenBitsIsIdentityAndTooFewBitsThrow) {
  const torch::Tensor x = torch::randn({3, 5});
  EXPECT_TRUE(torch::equal(fake_quant_per_token(x, 16), x));
  EXPECT_THROW(fake_quant_per_token(x, 1), illm::Error);
  EXPECT_THROW(quantize_weight(x, 9, 0, {}, {}), illm::Error);
  EXPECT_THROW(quantize_weight(x, 4, 2, {}, {}), illm::Error);  // 5 columns not a multiple of 2
}

// Error bound: |x̂ − x| ≤ s/2 for every element in range, any bit width.
TEST(Quantizers, ErrorWithinHalfStep) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({16, 64}) * 3;
  for (int bits = 2; bits <= 8; ++bits) {
    const torch::Tensor s = (x.amax(-1, true).clamp_min(0) - x.amin(-1, true).clamp_max(0)) / ((1 << bits) - 1);
    const torch::Tensor err = (fake_quant_per_token(x, bits) - x).abs();
    EXPECT_TRUE((err <= s * 0.5 + 1e-5).all().item<bool>()) << bits;
  }
}

// W row [−0.3, 0.1, 0.6], 2 bits: s = 0.3, z = 1, codes [0, 1, 3], x̂ = [−0.3, 0, 0.6].
TEST(Quantizers, WeightPerChannelHandCase) {
  const WeightQuant q = quantize_weight(t({-0.3f, 0.1f, 0.6f, 1, 2, 3}).reshape({2, 3}), 2, 0, {}, {});
  expect_near(q.dequantized, {-0.3f, 0, 0.6f, 1, 2, 3});
  EXPECT_EQ(q.codes.reshape({-1})[0].item<int64_t>(), 0);
  EXPECT_EQ(q.codes.reshape({-1})[1].item<int64_t>(), 1);
  EXPECT_EQ(q.codes.reshape({-1})[2].item<int64_t>(), 3);
  EXPECT_EQ(q.zero_point[0][0].item<int64_t>(), 1);
  EXPECT_NEAR(q.scale[0][0].item<float>(), 0.3f, 1e-7);
  EXPECT_EQ(q.zero_point[1][0].item<int64_t>(), 0);  // row 2: lo widened to 0
}

// Groups of 2 columns: [−1, 2 | 0, 6], 2 bits → group scales 1 (z = 1) and 2 (z = 0): exact.
// As one channel the 6 would set s = 7/3 and −1 would not survive.
TEST(Quantizers, WeightPerGroup) {
  const WeightQuant q = quantize_weight(t({-1, 2, 0, 6}).reshape({1, 4}), 2, 2, {}, {});
  ASSERT_EQ(q.scale.size(1), 2);
  EXPECT_NEAR(q.scale[0][0].item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(q.scale[0][1].item<float>(), 2.0f, 1e-6);
  EXPECT_EQ(q.zero_point[0][0].item<int64_t>(), 1);
  EXPECT_EQ(q.zero_point[0][1].item<int64_t>(), 0);
  expect_near(q.dequantized, {-1, 2, 0, 6}, 1e-6);
}

// LWC: logit 0 → σ = 0.5 halves max and min; [−2, 4] 2 bits → range [−1, 2], s = 1, z = 1, clamped codes.
TEST(Quantizers, LwcClipsAndHasGradient) {
  const torch::Tensor w = t({-2, 1, 4}).reshape({1, 3});
  torch::Tensor up = torch::zeros({1, 1}).requires_grad_(true), lo = torch::zeros({1, 1}).requires_grad_(true);
  const WeightQuant q = quantize_weight(w, 2, 0, up, lo);
  expect_near(q.dequantized, {-1, 1, 2});
  q.dequantized.sum().backward();
  EXPECT_NE(up.grad().abs().sum().item<float>(), 0.0f);
  // Large logits ≈ no clipping (RTN): s = 2, z = 1.
  const torch::Tensor big = torch::full({1, 1}, 30.0);
  expect_near(quantize_weight(w, 2, 0, big, big).dequantized, {-2, 2, 4}, 1e-5);  // 1/2 = 0.5 rounds up
}

}  // namespace
