// DI_REQUANT / DI_REQUANT_SYM (docs/method.md §3.4, §7.2): hand-derived rows and the Appendix B.3 properties
// against a float64 (long double) reconstruction.
#include "kernels/requant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"

namespace illm {
namespace {

long double dyadic_value(Dyadic d) { return std::ldexp(static_cast<long double>(d.m), -d.k); }

TEST(DiRequant, HandDerivedAsymmetric) {
  // R = 15, Q_o = 15 ⇒ exact scale 1; 8-bit mantissa: k_y = ⌊log2(255·15/15)⌋ = 7, m_y = ⌈15·2^7/15⌉ = 128.
  const std::vector<int64_t> v = {0, 10, -5};
  std::vector<int32_t> y(3);
  const DiRequantResult r = di_requant(v, 1, 0, 4, 8, std::span<int32_t>(y));
  EXPECT_EQ(r.scale, (Dyadic{128, 7}));
  EXPECT_EQ(r.zero_point, 5);
  EXPECT_EQ(y, (std::vector<int32_t>{5, 15, 0}));
}

TEST(DiRequant, HandDerivedSymmetric) {
  // max|v| = 100, Q = 127, b_m = 16: k_y = ⌊log2(65535·127/100)⌋ = 16, m_y = ⌈100·2^16/127⌉ = 51604;
  // codes: −100·65536/51604 = −127.0002 → −127; 50·65536/51604 = 63.499 → 63.
  const std::vector<int64_t> v = {-100, 50, 0};
  std::vector<int16_t> y(3);
  const DiRequantResult r = di_requant_symmetric(v, 1, 0, 8, 16, std::span<int16_t>(y));
  EXPECT_EQ(r.scale, (Dyadic{51604, 16}));
  EXPECT_EQ(r.zero_point, 0);
  EXPECT_EQ(y, (std::vector<int16_t>{-127, 63, 0}));
}

TEST(DiRequant, ZeroRowAndErrors) {
  const std::vector<int64_t> v(5, 0);
  std::vector<uint16_t> y(5, 7);
  const DiRequantResult r = di_requant(v, 3, 4, 8, 16, std::span<uint16_t>(y));
  EXPECT_EQ(r.zero_point, 0);
  EXPECT_EQ(r.scale, (Dyadic{1, 0}));
  EXPECT_EQ(y, std::vector<uint16_t>(5, 0));
  std::vector<uint8_t> small(4);
  EXPECT_THROW(di_requant(v, 1, 0, 8, 16, std::span<uint8_t>(small)), Error);  // length mismatch
  std::vector<uint8_t> y8(5);
  EXPECT_THROW(di_requant(v, 1, 0, 9, 16, std::span<uint8_t>(y8)), Error);  // 9 bits do not fit uint8
  EXPECT_THROW(di_requant(v, 0, 0, 8, 16, std::span<uint8_t>(y8)), Error);  // m_in = 0
}

struct ErrorStats {
  long double max_lsb = 0;
  long double max_scale_excess = 0;  // emitted / exact scale − 1
};

// Random rows: magnitudes 2^1 … 2^54, optionally one-sided, random m_in and k_in.
ErrorStats run_random(bool symmetric, int out_bits, int mantissa_bits, uint64_t seed, int rows) {
  std::mt19937_64 rng(seed);
  ErrorStats stats;
  for (int row = 0; row < rows; ++row) {
    const int n = 1 + static_cast<int>(rng() % 64);
    const int mag_bits = 1 + static_cast<int>(rng() % 54);
    const int sign_mode = static_cast<int>(rng() % 3);  // 0 mixed, 1 non-negative, 2 non-positive
    std::vector<int64_t> v(n);
    for (auto& x : v) {
      x = static_cast<int64_t>(rng() >> (64 - mag_bits));
      if (sign_mode == 2 || (sign_mode == 0 && rng() % 2)) x = -x;
    }
    const int64_t m_in = 1 + static_cast<int64_t>(rng() % 65535);
    const int32_t k_in = static_cast<int32_t>(rng() % 80) - 20;
    std::vector<int32_t> y(n);
    const DiRequantResult r = symmetric ? di_requant_symmetric(v, m_in, k_in, out_bits, mantissa_bits, y)
                                        : di_requant(v, m_in, k_in, out_bits, mantissa_bits, y);
    const int64_t q = symmetric ? (int64_t{1} << (out_bits - 1)) - 1 : (int64_t{1} << out_bits) - 1;
    EXPECT_GE(r.scale.m, 1);
    EXPECT_LE(r.scale.m, (int64_t{1} << mantissa_bits) - 1);
    if (symmetric) {
      EXPECT_EQ(r.zero_point, 0);
    } else {
      EXPECT_GE(r.zero_point, 0);
      EXPECT_LE(r.zero_point, q);
    }
    const long double s_in = std::ldexp(static_cast<long double>(m_in), -k_in);
    const long double s_y = dyadic_value(r.scale);
    long double lo = 0, hi = 0;
    for (int j = 0; j < n; ++j) {
      EXPECT_GE(y[j], symmetric ? -q : 0);
      EXPECT_LE(y[j], q);
      const long double real = static_cast<long double>(v[j]) * s_in;
      lo = std::min(lo, real);
      hi = std::max(hi, real);
      const long double err = std::fabs(s_y * (y[j] - r.zero_point) - real) / s_y;
      stats.max_lsb = std::max(stats.max_lsb, err);
    }
    const long double exact_scale = symmetric ? std::max(-lo, hi) / q : (hi - lo) / q;
    if (exact_scale > 0) stats.max_scale_excess = std::max(stats.max_scale_excess, s_y / exact_scale - 1);
  }
  return stats;
}

class DiRequantProperties : public ::testing::TestWithParam<std::tuple<bool, int, int>> {};

TEST_P(DiRequantProperties, CodesInRangeAndHalfLsbReconstruction) {
  const auto [symmetric, out_bits, mantissa_bits] = GetParam();
  const ErrorStats s = run_random(symmetric, out_bits, mantissa_bits, 1000 + out_bits * 31 + mantissa_bits, 1000);
  std::printf("%s n_o=%2d b_m=%2d: max reconstruction error %.6Lf LSB, emitted scale ≤ exact·(1 + %.2Le)\n",
              symmetric ? "SYM " : "ASYM", out_bits, mantissa_bits, s.max_lsb, s.max_scale_excess);
  EXPECT_LE(s.max_lsb, 0.51L);  // rounding of Y (0.5) + row normalization and multiplier rounding
  // The ceiling mantissa keeps the scale at most one mantissa step (plus the row normalization) above exact.
  EXPECT_LE(s.max_scale_excess, std::ldexp(1.0L, -(mantissa_bits - 1)) * 1.01L);
}

INSTANTIATE_TEST_SUITE_P(Widths, DiRequantProperties,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(4, 8, 16), ::testing::Values(8, 16)));

}  // namespace
}  // namespace illm
