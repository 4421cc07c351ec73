// The fused fold + fake-quant kernel (calibration/fused_weight_quant.h) against the unfused torch ops it replaces
// (fold_smoothing + quantize_block_weights, the independent implementation): the same values bit for bit in the
// forward pass, and the gradients autograd derives through the torch ops, on a small GQA block with random
// smoothing vectors, random LWC logits, per-channel and per-group weights, 4 and 8 bits, and rows with tied maxima.
#include "calibration/fused_weight_quant.h"

#include <gtest/gtest.h>

#include "calibration/fake_quant_block.h"

namespace {

using namespace illm::calib;

const BlockShape kShape{64, 96, 4, 2, 16, 1e-5};

BlockWeights random_block() {
  torch::manual_seed(11);
  const int64_t C = kShape.hidden, I = kShape.intermediate, q = kShape.n_heads * kShape.head_dim,
                kv = kShape.n_kv_heads * kShape.head_dim;
  BlockWeights w;
  w.attn_norm = torch::rand({C}) + 0.5;
  w.ffn_norm = torch::rand({C}) + 0.5;
  w.wq = torch::randn({q, C}) * 0.05;
  w.wk = torch::randn({kv, C}) * 0.05;
  w.wv = torch::randn({kv, C}) * 0.05;
  w.wo = torch::randn({C, q}) * 0.05;
  w.w_gate = torch::randn({I, C}) * 0.05;
  w.w_up = torch::randn({I, C}) * 0.05;
  w.w_down = torch::randn({C, I}) * 0.05;
  // Tied extremes: row 3 of q_proj has its maximum twice and its minimum three times; a row of zeros.
  w.wq[3][5] = 0.3f;
  w.wq[3][40] = 0.3f;
  w.wq[3][7] = -0.2f;
  w.wq[3][8] = -0.2f;
  w.wq[3][60] = -0.2f;
  w.w_down[2].zero_();
  return w;
}

SmoothParams random_smoothing() {
  SmoothParams s = SmoothParams::identity(kShape, true);
  for (torch::Tensor* v : {&s.s1, &s.s2, &s.s3, &s.s4, &s.s5, &s.s6})
    *v = torch::exp(torch::randn(v->sizes()) * 0.5);
  s.s2[0] = 0.004f;  // below the guard (|s| < 1e-2): the straight-through branch
  return s;
}

LwcParams random_lwc(const BlockWeights& w, int group) {
  LwcParams p = LwcParams::init(w, group, 2.0);
  for (int i = 0; i < kNumLinears; ++i) {
    p.upper[i] = p.upper[i] + torch::randn(p.upper[i].sizes());
    p.lower[i] = p.lower[i] + torch::randn(p.lower[i].sizes());
  }
  return p;
}

class FusedWeightQuant : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(FusedWeightQuant, ForwardIsBitIdenticalToTheTorchOps) {
  const auto [bits, group] = GetParam();
  torch::NoGradGuard no_grad;
  const BlockWeights fp = random_block();
  const SmoothParams s = random_smoothing();
  const LwcParams lwc = random_lwc(fp, group);
  for (const LwcParams* clip : {static_cast<const LwcParams*>(nullptr), &lwc}) {
    std::array<WeightQuant, kNumLinears> fused_q, torch_q;
    const FoldedBlock fused = fold_and_fake_quantize(fp, s, kShape, bits, group, clip, &fused_q);
    const FoldedBlock reference = fold_and_fake_quantize_unfused(fp, s, kShape, bits, group, clip, &torch_q);
    EXPECT_TRUE(torch::equal(fused.weights.attn_norm, reference.weights.attn_norm));
    EXPECT_TRUE(torch::equal(fused.weights.ffn_norm, reference.weights.ffn_norm));
    EXPECT_TRUE(torch::equal(fused.alpha, reference.alpha));
    for (int i = 0; i < kNumLinears; ++i) {
      SCOPED_TRACE(linear_name(i));
      EXPECT_TRUE(torch::equal(linear_weight(fused.weights, i), linear_weight(reference.weights, i)));
      EXPECT_TRUE(torch::equal(fused_q[i].codes.to(torch::kInt64), torch_q[i].codes));
      EXPECT_TRUE(torch::equal(fused_q[i].scale, torch_q[i].scale));
      EXPECT_TRUE(torch::equal(fused_q[i].zero_point, torch_q[i].zero_point));
    }
    // Not vacuous: the values are quantized (they differ from the folded FP weights).
    EXPECT_GT((fused.weights.w_up - fold_smoothing(fp, s, kShape).weights.w_up).abs().max().item<double>(), 1e-4);
  }
  // Without smoothing or clipping the codes are plain RTN of the FP weights (quantize_weight).
  std::array<WeightQuant, kNumLinears> rtn;
  fold_and_fake_quantize(fp, SmoothParams::identity(kShape, true), kShape, bits, group, nullptr, &rtn);
  EXPECT_TRUE(torch::equal(rtn[kUp].codes.to(torch::kInt64), quantize_weight(fp.w_up, bits, group, {}, {}).codes));
}

TEST_P(FusedWeightQuant, GradientsMatchAutograd) {
  const auto [bits, group] = GetParam();
  const BlockWeights fp = random_block();
  const SmoothParams s0 = random_smoothing();
  const LwcParams lwc0 = random_lwc(fp, group);
  // A fixed random linear functional of every output, so each weight's gradient is a random matrix.
  std::vector<torch::Tensor> probes;
  for (int i = 0; i < kNumLinears; ++i) probes.push_back(torch::randn(linear_weight(fp, i).sizes()));
  const torch::Tensor norm_probe = torch::randn({kShape.hidden});

  auto gradients = [&](bool fused) {
    SmoothParams s = s0;
    LwcParams lwc = lwc0;
    std::vector<torch::Tensor> params;
    for (torch::Tensor* t : {&s.s1, &s.s2, &s.s3, &s.s4, &s.s5, &s.s6}) *t = t->clone().set_requires_grad(true);
    for (int i = 0; i < kNumLinears; ++i) {
      lwc.upper[i] = lwc.upper[i].clone().set_requires_grad(true);
      lwc.lower[i] = lwc.lower[i].clone().set_requires_grad(true);
    }
    params = s.all();
    for (const auto& t : lwc.all()) params.push_back(t);
    const FoldedBlock out = fused ? fold_and_fake_quantize(fp, s, kShape, bits, group, &lwc)
                                  : fold_and_fake_quantize_unfused(fp, s, kShape, bits, group, &lwc);
    torch::Tensor loss = (out.weights.attn_norm * norm_probe).sum() + out.alpha.sum();
    for (int i = 0; i < kNumLinears; ++i) loss = loss + (linear_weight(out.weights, i) * probes[i]).sum();
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto fused = gradients(true), reference = gradients(false);
  ASSERT_EQ(fused.size(), reference.size());
  for (size_t k = 0; k < fused.size(); ++k) {
    const double scale = reference[k].abs().max().item<double>();
    EXPECT_GT(scale, 0) << "parameter " << k << " gets no gradient: the comparison would be vacuous";
    // Float32 sums in another order: agreement to ~1e-5 of the largest entry.
    EXPECT_LE((fused[k] - reference[k]).abs().max().item<double>(), 2e-5 * scale + 1e-7)
        << "parameter " << k << " (s1..s6, then upper/lower logits per linear)";
  }
}

INSTANTIATE_TEST_SUITE_P(BitsAndGroups, FusedWeightQuant,
                         ::testing::Values(std::make_tuple(4, 0), std::make_tuple(8, 0), std::make_tuple(4, 16)));

}  // namespace
