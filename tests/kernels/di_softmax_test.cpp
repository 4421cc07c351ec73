// DI-ClippedSoftmax (kernels/reference/di_softmax.h): Appendix B invariants, masking, hand cases and accuracy
// against the float64 softmax of the same (dequantized) logits.
#include "kernels/reference/di_softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "tests/kernels/support/ideal_ops.h"

namespace illm {
namespace {

// Aligned-logit units used by the tests: real logit = v · kMIn / 2^kKIn (≈ 3.7e−5 per unit).
constexpr int64_t kMIn = 39487;
constexpr int32_t kKIn = 30;
double logit_step() { return std::ldexp(static_cast<double>(kMIn), -kKIn); }

IntegerSettings paper_settings() { return paper_conformance_settings(); }

std::vector<int64_t> random_logits(std::mt19937_64& rng, int n, double std_dev) {
  std::normal_distribution<double> normal(0.0, std_dev);
  std::vector<int64_t> v(n);
  for (auto& x : v) x = std::llround(normal(rng) / logit_step());
  return v;
}

TEST(DiSoftmax, SingleValidKeyGetsExactlyOne) {
  for (const IntegerSettings& s : {IntegerSettings{}, paper_settings()}) {
    std::vector<int64_t> v = {123456, -999999999, 42, 7};
    std::vector<int32_t> p(v.size(), -1);
    di_clipped_softmax_row(v, kMIn, kKIn, 1, Dyadic{15, 0}, s, p);
    EXPECT_EQ(p[0], 1 << (s.prob_bits - 1));
    EXPECT_EQ(p[1], 0);
    EXPECT_EQ(p[2], 0);
    EXPECT_EQ(p[3], 0);
  }
}

TEST(DiSoftmax, NoValidKeyGivesZeros) {
  std::vector<int64_t> v = {1, 2, 3};
  std::vector<int32_t> p(3, -1);
  const DiSoftmaxRow row = di_clipped_softmax_row(v, kMIn, kKIn, 0, Dyadic{15, 0}, IntegerSettings{}, p);
  EXPECT_EQ(row.exp_sum, 0);
  EXPECT_EQ(p, (std::vector<int32_t>{0, 0, 0}));
}

TEST(DiSoftmax, EqualLogitsGiveUniformFlooredProbabilities) {
  // All logits equal: the requant range is 0, every x = 0, E = |t|, P = floor(2^(p−1) / n).
  for (int n : {1, 3, 7, 172}) {
    std::vector<int64_t> v(n, 5000);
    std::vector<int32_t> p(n);
    di_clipped_softmax_row(v, kMIn, kKIn, n, Dyadic{15, 0}, IntegerSettings{}, p);
    for (int32_t x : p) EXPECT_EQ(x, (1 << 15) / n);
  }
}

TEST(DiSoftmax, TwoKeysFollowTheLogistic) {
  // Two keys with logits 0 and −1: p0 = 1/(1 + e^−1) = 0.7311 (within DI-Exp's error), sum ≤ 2^(p−1).
  std::vector<int64_t> v = {0, -static_cast<int64_t>(std::llround(1.0 / logit_step()))};  // logits 0 and −1
  std::vector<int32_t> p(2);
  di_clipped_softmax_row(v, kMIn, kKIn, 2, Dyadic{}, IntegerSettings{}, p);  // Dyadic{} has m = 1: c = 1
  // Clip c = 1 (Dyadic{} = 1/2^0) leaves this row as is: its range is exactly 1.
  EXPECT_NEAR(p[0] / 32768.0, 1.0 / (1.0 + std::exp(-1.0)), 0.01);
  EXPECT_LE(p[0] + p[1], 1 << 15);
}

TEST(DiSoftmax, MaskedKeysAreIgnoredEvenIfHuge) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 200);
    std::vector<int64_t> v = random_logits(rng, n, 3.0);
    std::vector<int32_t> reference(n);
    di_clipped_softmax_row(v, kMIn, kKIn, n, Dyadic{15, 0}, IntegerSettings{}, reference);
    // Append masked keys with extreme values: the valid part must not change at all.
    std::vector<int64_t> longer = v;
    longer.push_back(int64_t{1} << 61);
    longer.push_back(-(int64_t{1} << 61));
    std::vector<int32_t> p(longer.size(), -1);
    di_clipped_softmax_row(longer, kMIn, kKIn, n, Dyadic{15, 0}, IntegerSettings{}, p);
    for (int j = 0; j < n; ++j) ASSERT_EQ(p[j], reference[j]);
    EXPECT_EQ(p[n], 0);
    EXPECT_EQ(p[n + 1], 0);
  }
}

TEST(DiSoftmax, ClipUnitsHandCases) {
  // c = 15, m_in = 3, k_in = 4 (step 3/16): c^I = cdiv(15·16, 3) = 80.
  EXPECT_EQ(softmax_clip_in_logit_units(Dyadic{15, 0}, 3, 4), 80);
  // c = 15/2 (m 15, k 1), m_in 7, k_in 3: cdiv(15·8, 7·2) = cdiv(120, 14) = 9.
  EXPECT_EQ(softmax_clip_in_logit_units(Dyadic{15, 1}, 7, 3), 9);
  // Negative exponents on the logit side: k_in = −2 (step 4·m_in): cdiv(15, 3·4) = 2.
  EXPECT_EQ(softmax_clip_in_logit_units(Dyadic{15, 0}, 3, -2), 2);
  EXPECT_EQ(softmax_clip_in_logit_units(Dyadic{0, 0}, 3, 4), int64_t{1} << 62);  // no clipping
}

TEST(DiSoftmax, ClippingLiftsFarKeysToTheFloor) {
  // Keys far below v_max − c all get the same probability as a key exactly at v_max − c.
  const int64_t unit = std::llround(1.0 / logit_step());
  std::vector<int64_t> v = {0, -8 * unit, -30 * unit, -300 * unit};
  std::vector<int32_t> p(4);
  di_clipped_softmax_row(v, kMIn, kKIn, 4, Dyadic{8, 0}, IntegerSettings{}, p);
  EXPECT_EQ(p[1], p[2]);
  EXPECT_EQ(p[2], p[3]);
  EXPECT_GT(p[1], 0);  // e^−8 · 2^15 ≈ 11
}

TEST(DiSoftmax, RejectsBadArguments) {
  std::vector<int64_t> v = {1, 2};
  std::vector<int32_t> p(3);
  EXPECT_THROW(di_clipped_softmax_row(v, kMIn, kKIn, 2, Dyadic{15, 0}, IntegerSettings{}, p), Error);
  std::vector<int32_t> q(2);
  EXPECT_THROW(di_clipped_softmax_row(v, kMIn, kKIn, 3, Dyadic{15, 0}, IntegerSettings{}, q), Error);
}

struct RowError {
  double l1 = 0;
  double max_abs = 0;
};

RowError compare_with_float(const std::vector<int64_t>& v, int valid, Dyadic clip, const IntegerSettings& s) {
  std::vector<int32_t> p(v.size());
  di_clipped_softmax_row(v, kMIn, kKIn, valid, clip, s, p);
  std::vector<double> real(v.size());
  for (size_t j = 0; j < v.size(); ++j) real[j] = static_cast<double>(v[j]) * logit_step();
  const std::vector<double> exact = ideal::softmax(real, valid);  // unclipped float softmax
  RowError e;
  const double one = std::ldexp(1.0, s.prob_bits - 1);
  for (size_t j = 0; j < v.size(); ++j) {
    const double d = std::fabs(p[j] / one - exact[j]);
    e.l1 += d;
    e.max_abs = std::max(e.max_abs, d);
  }
  return e;
}

TEST(DiSoftmax, PropertiesOnRandomRows) {
  std::mt19937_64 rng(2024);
  const int lengths[] = {1, 2, 16, 17, 64, 172, 255, 512};
  for (const IntegerSettings& s : {IntegerSettings{}, paper_settings()}) {
    for (int n : lengths) {
      for (double sd : {1.0, 3.0, 8.0}) {
        const std::vector<int64_t> v = random_logits(rng, n, sd);
        const int valid = 1 + static_cast<int>(rng() % n);
        std::vector<int32_t> p(n, -1);
        const DiSoftmaxRow row = di_clipped_softmax_row(v, kMIn, kKIn, valid, Dyadic{15, 0}, s, p);
        int64_t sum = 0;
        for (int j = 0; j < n; ++j) {
          ASSERT_GE(p[j], 0);
          if (j >= valid) {
            ASSERT_EQ(p[j], 0);
          }
          sum += p[j];
        }
        EXPECT_LE(sum, int64_t{1} << (s.prob_bits - 1));
        EXPECT_GT(row.exp_sum, 0);
        EXPECT_GE(row.abs_t, 1 << 13);
        EXPECT_LE(row.abs_t, 1 << 15);
      }
    }
  }
}

TEST(DiSoftmax, DefaultSettingsTrackFloatSoftmax) {
  // Default: 16-bit input, c = 15, quadratic DI-Exp, 16-bit probabilities. kernel_error_tables measures a worst
  // L1 per row of ≈ 0.01 and max |ΔP| ≈ 0.0023 (dominated by log2 e ≈ 1.4375); bound them at 0.03 and 0.006.
  std::mt19937_64 rng(99);
  for (double sd : {1.0, 3.0, 8.0}) {
    for (int trial = 0; trial < 12; ++trial) {
      const int n = 16 + static_cast<int>(rng() % 497);
      const std::vector<int64_t> v = random_logits(rng, n, sd);
      const RowError e = compare_with_float(v, n, Dyadic{15, 0}, IntegerSettings{});
      EXPECT_LT(e.l1, 0.03) << "std " << sd << " n " << n;
      EXPECT_LT(e.max_abs, 0.006) << "std " << sd << " n " << n;
    }
  }
}

TEST(DiSoftmax, PaperConformanceLosesMassOnFlatRows) {
  // §4.4: 8-bit floored probabilities lose most of the mass of long flat rows, little on peaky rows.
  std::mt19937_64 rng(5);
  const std::vector<int64_t> flat = random_logits(rng, 512, 1.0);
  const std::vector<int64_t> peaky = random_logits(rng, 512, 8.0);
  EXPECT_GT(compare_with_float(flat, 512, Dyadic{15, 0}, paper_settings()).l1, 0.5);
  EXPECT_LT(compare_with_float(peaky, 512, Dyadic{15, 0}, paper_settings()).l1, 0.2);
}

}  // namespace
}  // namespace illm
