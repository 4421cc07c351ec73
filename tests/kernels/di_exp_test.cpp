// DI-Exp (kernels/reference/di_exp.h): Appendix B hand cases, the promotion rule, monotonicity and accuracy
// against float64 e^x over the range that occurs after clipping (x ∈ [−c, 0]).
#include "kernels/reference/di_exp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"

namespace illm {
namespace {

// The dyadic with a 16-bit mantissa nearest to s (docs/method.md §1.4 float → dyadic), for building test scales.
void dyadic_of(double s, int64_t& m, int32_t& k) {
  k = 15 - static_cast<int32_t>(std::floor(std::log2(s)));
  m = std::llround(std::ldexp(s, k));
  if (m == (int64_t{1} << 16)) { m >>= 1; --k; }
}

TEST(DiExp, Log2eMantissaIsOnePlusHalfMinusSixteenth) {
  EXPECT_EQ(di_exp_log2e_mantissa(16), 23);           // 16 + 8 − 1
  EXPECT_EQ(di_exp_log2e_mantissa(61681), 88666);     // 61681 + 30840 − 3855
  EXPECT_EQ(di_exp_log2e_mantissa(1), 1);
}

TEST(DiExp, PromotionRuleMatchesMethodDocExamples) {
  // §4.3: 8-bit input clipped at c = 15 (s = 15/255): E = 11, |t| ≈ 24 220; 16-bit (s = 15/65535): E = 3, |t| ≈ 24 315.
  int64_t m; int32_t k;
  dyadic_of(15.0 / 255.0, m, k);
  DiExpFrame f8 = di_exp_frame(m, k);
  EXPECT_EQ(f8.promote, 11);
  EXPECT_NEAR(static_cast<double>(-f8.t), 24220, 2);
  dyadic_of(15.0 / 65535.0, m, k);
  DiExpFrame f16 = di_exp_frame(m, k);
  EXPECT_EQ(f16.promote, 3);
  EXPECT_NEAR(static_cast<double>(-f16.t), 24315, 2);
}

TEST(DiExp, PromotedStepsPerOctaveStayInRange) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const int64_t m = 1 + static_cast<int64_t>(rng() % ((int64_t{1} << 24) - 1));
    const int32_t k = static_cast<int32_t>(rng() % 80) - 8;
    DiExpFrame f;
    try { f = di_exp_frame(m, k); } catch (const Error&) { continue; }  // only absurdly coarse scales refuse
    const int64_t abs_t = -f.t;
    EXPECT_GE(abs_t, int64_t{1} << 13) << m << " " << k;
    EXPECT_LE(abs_t, int64_t{1} << 15) << m << " " << k;
    // |t| = round(2^(k+P) / m_f) independently in long double.
    const long double exact = std::ldexp(1.0L, k + f.promote) / static_cast<long double>(di_exp_log2e_mantissa(m));
    EXPECT_LE(std::fabs(static_cast<long double>(abs_t) - exact), 0.5L + 1e-9L);
  }
  EXPECT_THROW(di_exp_frame(0, 10), Error);
}

TEST(DiExp, AppendixBHandCases) {
  for (bool quadratic : {false, true}) {
    for (int64_t t : {int64_t{-12}, int64_t{-8192}, int64_t{-24220}, int64_t{-32767}, int64_t{-32768}}) {
      const int64_t abs_t = -t;
      EXPECT_EQ(di_exp(0, t, quadratic), abs_t);             // e^0 = 1 exactly
      EXPECT_EQ(di_exp(t, t, quadratic), abs_t >> 1);        // e^(−ln 2 ·…) = ½, floored
      EXPECT_EQ(di_exp(4 * t, t, quadratic), abs_t >> 4);    // whole octaves are exact shifts
      EXPECT_EQ(di_exp(63 * t, t, quadratic), 0);            // q ≥ 63 → 0
      EXPECT_EQ(di_exp(1000 * t - 5, t, quadratic), 0);
    }
  }
  // Linear form by hand, |t| = 12, x = −5: q = 0, r = −5, E0 = asr(−5, 1) + 12 = −3 + 12 = 9.
  EXPECT_EQ(di_exp(-5, -12, false), 9);
  // x = −17: q = 1, r = −5 → E = 9 >> 1 = 4.
  EXPECT_EQ(di_exp(-17, -12, false), 4);
  // Quadratic by hand, |t| = 16384, x = −8192 (u = −½): r·(A·|t| + B·r) = −8192·(11017·16384 − 2821·8192)
  // = −8192·(180502528 − 23109632) = −8192·157392896; / (16384·2^14) = −4803.25 → rdiv −4803
  // → E = 16384 − 4803 = 11581 (exact 2^−½·2^14 = 11585.2).
  EXPECT_EQ(di_exp(-8192, -16384, true), 11581);
}

TEST(DiExp, NonIncreasingInX) {
  for (bool quadratic : {false, true}) {
    for (int64_t t : {int64_t{-12}, int64_t{-3039}, int64_t{-8192}, int64_t{-24315}, int64_t{-32768}}) {
      int64_t previous = di_exp(0, t, quadratic);
      for (int64_t x = -1; x >= 20 * t; --x) {
        const int64_t e = di_exp(x, t, quadratic);
        ASSERT_LE(e, previous) << "x=" << x << " t=" << t << " quadratic=" << quadratic;
        previous = e;
      }
    }
  }
}

// Worst relative error of E/|t| against e^x over x ∈ [−c, 0] where e^x > floor_value, for an n-bit input.
double worst_relative_error(int bits, double c, bool quadratic, double floor_value) {
  const int64_t q_in = (int64_t{1} << bits) - 1;
  int64_t m; int32_t k;
  dyadic_of(c / static_cast<double>(q_in), m, k);
  const DiExpFrame f = di_exp_frame(m, k);
  const double step = std::ldexp(static_cast<double>(m), -k);
  double worst = 0;
  for (int64_t x = 0; x >= -q_in; --x) {
    const double exact = std::exp(static_cast<double>(x) * step);
    if (exact <= floor_value) break;
    const double approx = static_cast<double>(di_exp(di_exp_promote(x, f), f.t, quadratic)) / static_cast<double>(-f.t);
    worst = std::max(worst, std::fabs(approx - exact) / exact);
  }
  return worst;
}

TEST(DiExp, AccuracyOverTheClippedRange) {
  // Budget (docs/method.md §4.3): log2 e ≈ 1.4375 overestimates e^x by ≈ 2.5 % at x = −6.9 (e^x = 10^−3) and 3.7 % at
  // x = −10; the linear 2^u adds up to 6.2 %, the quadratic ≈ 0.1 %. Measured (kernel_error_tables): quadratic
  // 2.6 % / 3.1 % (16 / 8-bit input), linear 8.7 % / 8.6 %.
  EXPECT_LT(worst_relative_error(16, 15.0, true, 1e-3), 0.035);
  EXPECT_LT(worst_relative_error(16, 15.0, false, 1e-3), 0.09);
  EXPECT_LT(worst_relative_error(8, 15.0, true, 1e-3), 0.035);
  EXPECT_LT(worst_relative_error(8, 15.0, false, 1e-3), 0.09);
  // Near 0 (e^x > 0.5) the quadratic form is within 0.3 %.
  EXPECT_LT(worst_relative_error(16, 15.0, true, 0.5), 0.003);
}

}  // namespace
}  // namespace illm
