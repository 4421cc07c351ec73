// converter/metrics: hand-derived values.
#include "converter/metrics.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/error.h"

namespace {

using namespace illm::converter;

TEST(Metrics, NextTokenNll) {
  const std::vector<float> uniform = {0, 0};
  EXPECT_NEAR(next_token_nll(uniform, 0), std::log(2.0), 1e-12);
  // softmax([0, ln 3]) = [1/4, 3/4]
  const std::vector<float> skewed = {0, float(std::log(3.0))};
  EXPECT_NEAR(next_token_nll(skewed, 1), -std::log(0.75), 1e-7);
  EXPECT_NEAR(next_token_nll(skewed, 0), std::log(4.0), 1e-7);
  // Large logits do not overflow.
  const std::vector<float> large = {1000, 1000};
  EXPECT_NEAR(next_token_nll(large, 1), std::log(2.0), 1e-12);
  EXPECT_THROW(next_token_nll(uniform, 2), illm::Error);
  EXPECT_THROW(next_token_nll(uniform, -1), illm::Error);
}

TEST(Metrics, KlDivergence) {
  const std::vector<float> ref = {0, 0}, model = {0, float(std::log(3.0))};
  // KL([1/2,1/2] ‖ [1/4,3/4]) = ½ ln 2 + ½ ln(2/3)
  EXPECT_NEAR(kl_divergence(ref, model), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-7);
  EXPECT_EQ(kl_divergence(model, model), 0.0);
  // Shifting logits changes nothing.
  const std::vector<float> shifted = {5, 5};
  EXPECT_NEAR(kl_divergence(shifted, model), kl_divergence(ref, model), 1e-7);
}

TEST(Metrics, PerplexityOfWindow) {
  // T = 3, V = 2: row 0 predicts ids[1] = 1 with p 3/4, row 1 predicts ids[2] = 0 with p 1/2, row 2 unused.
  const float l3 = float(std::log(3.0));
  const std::vector<float> logits = {0, l3, 0, 0, 100, -100};
  const std::vector<int32_t> ids = {0, 1, 0};
  PerplexityAccumulator acc;
  acc.add_window(logits, ids, 2);
  EXPECT_EQ(acc.count(), 2);
  const double mean = (-std::log(0.75) + std::log(2.0)) / 2;
  EXPECT_NEAR(acc.mean_nll(), mean, 1e-7);
  EXPECT_NEAR(acc.perplexity(), std::exp(mean), 1e-7);
  const std::vector<int32_t> too_short = {0, 1};
  EXPECT_THROW(acc.add_window(logits, too_short, 2), illm::Error);
}

TEST(Metrics, AgreementOfWindow) {
  const std::vector<float> ref = {0, 1, 2, 0, 7, 7};    // rows {0,1} {2,0} {7,7}: argmax 1, 0, (row 2 not scored)
  const std::vector<float> model = {0, 3, 0, 2, 0, 9};  // rows {0,3} {0,2} {0,9}: argmax 1, 1
  AgreementAccumulator acc;
  acc.add_window(ref, model, 2);
  EXPECT_EQ(acc.count(), 2);
  EXPECT_NEAR(acc.top1(), 0.5, 1e-12);
  // Two-way softmax: p = [1/(1+e^(b−a)), ...]. Row 0: KL(softmax(0,1) ‖ softmax(0,3)); row 1: KL(softmax(2,0) ‖
  // softmax(0,2)) = (σ(2) − σ(−2))·2 = 2·tanh(1).
  auto sigmoid = [](double x) { return 1 / (1 + std::exp(-x)); };
  const double row0 = sigmoid(-1) * std::log(sigmoid(-1) / sigmoid(-3)) + sigmoid(1) * std::log(sigmoid(1) / sigmoid(3));
  const double expect = (row0 + 2 * std::tanh(1.0)) / 2;
  EXPECT_NEAR(acc.mean_kl(), expect, 1e-7);  // float logits
  const std::vector<float> tie = {4, 4, 1};
  EXPECT_EQ(argmax(tie), 0);
}


// Issue #8: a NaN or infinite logit is an error, not a perplexity of NaN (reported as `null` in JSON, exit 0).
TEST(Metrics, NonFiniteLogitsAreErrors) {
  const std::vector<float> with_nan = {0, std::nanf(""), 1}, with_inf = {0, INFINITY}, fine = {0, 1, 2};
  EXPECT_THROW(next_token_nll(with_nan, 0), illm::Error);
  EXPECT_THROW(next_token_nll(with_inf, 0), illm::Error);
  EXPECT_THROW(kl_divergence(with_nan, fine), illm::Error);
  EXPECT_THROW(kl_divergence(fine, with_nan), illm::Error);
  PerplexityAccumulator ppl;
  const std::vector<float> window = {0, std::nanf(""), 2, 0, 0, 0};  // 2 positions × vocab 3; row 0 is scored
  const std::vector<int32_t> ids = {0, 1};
  try {
    ppl.add_window(window, ids, 3);
    ADD_FAILURE() << "no error";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

}  // namespace
