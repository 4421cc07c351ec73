// Hand-derived cases and random checks of the integer primitives (docs/method.md §1.2, §5.3).
#include "kernels/integer_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "kernels/dyadic.h"

namespace illm {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(IntegerMath, FloorCeilDivision) {
  EXPECT_EQ(fdiv(7, 2), 3);
  EXPECT_EQ(fdiv(-7, 2), -4);
  EXPECT_EQ(fdiv(-8, 2), -4);
  EXPECT_EQ(fdiv(0, 5), 0);
  EXPECT_EQ(fdiv(-1, 5), -1);
  EXPECT_EQ(cdiv(7, 2), 4);
  EXPECT_EQ(cdiv(-7, 2), -3);
  EXPECT_EQ(cdiv(8, 2), 4);
  EXPECT_EQ(cdiv(1, 5), 1);
  EXPECT_EQ(cdiv(-1, 5), 0);
  EXPECT_EQ(fdiv(kMin, 1), kMin);
  EXPECT_EQ(cdiv(kMax, kMax), 1);
}

TEST(IntegerMath, RoundedDivisionTiesAwayFromZero) {
  EXPECT_EQ(rdiv(5, 2), 3);    // 2.5 → 3
  EXPECT_EQ(rdiv(-5, 2), -3);  // −2.5 → −3
  EXPECT_EQ(rdiv(7, 2), 4);    // 3.5 → 4
  EXPECT_EQ(rdiv(-7, 2), -4);
  EXPECT_EQ(rdiv(4, 3), 1);    // 1.33
  EXPECT_EQ(rdiv(5, 3), 2);    // 1.67
  EXPECT_EQ(rdiv(-4, 3), -1);
  EXPECT_EQ(rdiv(-5, 3), -2);
  EXPECT_EQ(rdiv(3, 6), 1);    // 0.5 → 1
  EXPECT_EQ(rdiv(-3, 6), -1);
  EXPECT_EQ(rdiv(2, 6), 0);
  EXPECT_EQ(rdiv(0, 7), 0);
  EXPECT_EQ(rdiv(kMax, 2), int64_t{1} << 62);  // (2^63 − 1)/2 = 2^62 − 0.5 → 2^62, no overflow
  EXPECT_EQ(rdiv(kMin, 2), -(int64_t{1} << 62));
  EXPECT_EQ(rdiv128(static_cast<__int128>(5) << 80, static_cast<__int128>(1) << 81), 3);  // 2.5 → 3
  EXPECT_EQ(rdiv128(-(static_cast<__int128>(5) << 80), static_cast<__int128>(1) << 81), -3);
  EXPECT_EQ(rdiv128(static_cast<__int128>(kMax) * 3, 3), kMax);
}

TEST(IntegerMath, ShiftsByZeroLargeAndNegative) {
  EXPECT_EQ(asr(-1, 0), -1);
  EXPECT_EQ(asr(-1, 1), -1);  // floor(−0.5)
  EXPECT_EQ(asr(-3, 1), -2);
  EXPECT_EQ(asr(5, 1), 2);
  EXPECT_EQ(asr(kMax, 31), (int64_t{1} << 32) - 1);
  EXPECT_EQ(asr(kMin, 63), -1);
  EXPECT_EQ(asr(kMax, 63), 0);
  EXPECT_EQ(asr(-5, 100), -1);
  EXPECT_EQ(shl(-3, 4), -48);
  EXPECT_EQ(shl(1, 62), int64_t{1} << 62);
  EXPECT_EQ(shl(-1, 63), kMin);
  EXPECT_EQ(shl(0, 63), 0);
  EXPECT_EQ(shl(7, 0), 7);
  // rshr: round half up (toward +∞).
  EXPECT_EQ(rshr(5, 0), 5);
  EXPECT_EQ(rshr(5, 1), 3);    // 2.5 → 3
  EXPECT_EQ(rshr(-5, 1), -2);  // −2.5 → −2 (half up)
  EXPECT_EQ(rshr(-6, 2), -1);  // −1.5 → −1
  EXPECT_EQ(rshr(-7, 2), -2);  // −1.75 → −2
  EXPECT_EQ(rshr(6, 2), 2);    // 1.5 → 2
  EXPECT_EQ(rshr(-1, 1), 0);   // −0.5 → 0
  EXPECT_EQ(rshr(3, -2), 12);  // negative shift = shl
  EXPECT_EQ(rshr(-3, -2), -12);
  EXPECT_EQ(rshr(int64_t{1} << 30, 31), 1);   // 0.5 → 1
  EXPECT_EQ(rshr(-(int64_t{1} << 30), 31), 0);  // −0.5 → 0
  EXPECT_EQ(rshr(kMax, 31), int64_t{1} << 32);  // (2^63 − 1)/2^31 = 2^32 − 2^−31 → 2^32, no overflow
  EXPECT_EQ(rshr(kMax, 63), 1);                 // ≈ 1 − 2^−63 → 1
  EXPECT_EQ(rshr(kMin, 63), -1);                // exactly −1
  EXPECT_EQ(rshr(kMin + 1, 63), -1);            // −1 + 2^−63 → −1
  EXPECT_EQ(rshr(kMax, 64), 0);                 // ≈ 0.5 − 2^−64 → 0
  EXPECT_EQ(rshr(kMin, 64), 0);                 // −0.5 → 0 (half up)
  EXPECT_EQ(rshr(kMin, 200), 0);
}

TEST(IntegerMath, MsbAndLog2Ratio) {
  EXPECT_EQ(msb(1), 0);
  EXPECT_EQ(msb(2), 1);
  EXPECT_EQ(msb(3), 1);
  EXPECT_EQ(msb(uint64_t{1} << 40), 40);
  EXPECT_EQ(msb(~uint64_t{0}), 63);
  EXPECT_EQ(flog2_ratio(1, 1), 0);
  EXPECT_EQ(flog2_ratio(7, 2), 1);    // log2 3.5 = 1.81
  EXPECT_EQ(flog2_ratio(8, 2), 2);    // exact power
  EXPECT_EQ(flog2_ratio(1, 3), -2);   // log2(1/3) = −1.58 → −2
  EXPECT_EQ(flog2_ratio(1, 4), -2);   // exact
  EXPECT_EQ(flog2_ratio(2, 5), -2);   // log2 0.4 = −1.32 → −2
  EXPECT_EQ(flog2_ratio(3, 5), -1);   // log2 0.6 = −0.74 → −1
  EXPECT_EQ(flog2_ratio(kMax, 1), 62);
  EXPECT_EQ(flog2_ratio(1, kMax), -63);
  EXPECT_EQ(flog2_ratio(int64_t{1} << 62, (int64_t{1} << 61) + 1), 0);  // ratio just below 2
}

TEST(IntegerMath, SaturationEdges) {
  EXPECT_EQ(sat(5, 0, 15), 5);
  EXPECT_EQ(sat(-1, 0, 15), 0);
  EXPECT_EQ(sat(16, 0, 15), 15);
  EXPECT_EQ(saturate_cast<int8_t>(127), 127);
  EXPECT_EQ(saturate_cast<int8_t>(128), 127);
  EXPECT_EQ(saturate_cast<int8_t>(-128), -128);
  EXPECT_EQ(saturate_cast<int8_t>(-129), -128);
  EXPECT_EQ(saturate_cast<uint8_t>(-1), 0);
  EXPECT_EQ(saturate_cast<uint8_t>(256), 255);
  EXPECT_EQ(saturate_cast<int16_t>(40000), 32767);
  EXPECT_EQ(saturate_cast<int16_t>(-40000), -32768);
  EXPECT_EQ(saturate_cast<uint16_t>(70000), 65535);
  EXPECT_EQ(saturate_cast<int32_t>(kMax), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(saturate_cast<int32_t>(kMin), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(saturate_cast<uint64_t>(-5), 0u);
  EXPECT_EQ(saturate_cast<uint64_t>(kMax), static_cast<uint64_t>(kMax));
  EXPECT_EQ(saturate_cast<int64_t>(kMin), kMin);
}

TEST(IntegerMath, IsqrtHandDerived) {
  EXPECT_EQ(isqrt(0), 0u);
  EXPECT_EQ(isqrt(1), 1u);
  EXPECT_EQ(isqrt(2), 1u);
  EXPECT_EQ(isqrt(3), 1u);
  EXPECT_EQ(isqrt(4), 2u);
  EXPECT_EQ(isqrt(15), 3u);
  EXPECT_EQ(isqrt(16), 4u);
  EXPECT_EQ(isqrt(17), 4u);
  EXPECT_EQ(isqrt(uint64_t{1} << 30), uint64_t{1} << 15);
  EXPECT_EQ(isqrt((uint64_t{1} << 31) - 1), 46340u);  // 46340² = 2147395600 ≤ 2^31−1 < 46341² = 2147488281
  const uint64_t r = (uint64_t{1} << 31) - 1;
  EXPECT_EQ(isqrt(r * r), r);
  EXPECT_EQ(isqrt(r * r - 1), r - 1);
  EXPECT_EQ(isqrt((uint64_t{1} << 62) - 1), (uint64_t{1} << 31) - 1);  // 2^62 − 1 < (2^31)²
  EXPECT_EQ(isqrt(uint64_t{1} << 62), uint64_t{1} << 31);
  EXPECT_EQ(isqrt((uint64_t{1} << 40) + 12345), uint64_t{1} << 20);
}

// Reference ⌊√n⌋: a long double estimate corrected by exact integer comparisons.
uint64_t reference_isqrt(uint64_t n) {
  uint64_t x = static_cast<uint64_t>(std::sqrt(static_cast<long double>(n)));
  while (static_cast<unsigned __int128>(x) * x > n) --x;
  while (static_cast<unsigned __int128>(x + 1) * (x + 1) <= n) ++x;
  return x;
}

TEST(IntegerMath, IsqrtRandomAgainstFloatReference) {
  std::mt19937_64 rng(20240601);
  for (int i = 0; i < 20000; ++i) {
    const int bits = 1 + static_cast<int>(rng() % 62);
    const uint64_t n = rng() >> (64 - bits);
    ASSERT_EQ(isqrt(n), reference_isqrt(n)) << "n=" << n;
  }
}

TEST(IntegerMath, RandomDivisionAndShiftAgainstLongDouble) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const int64_t a = static_cast<int64_t>(rng() >> 20) - (int64_t{1} << 43);  // |a| < 2^44: exact in long double
    const int64_t b = 1 + static_cast<int64_t>(rng() % 1000);
    const long double q = static_cast<long double>(a) / b;
    ASSERT_EQ(fdiv(a, b), static_cast<int64_t>(std::floor(q)));
    ASSERT_EQ(cdiv(a, b), static_cast<int64_t>(std::ceil(q)));
    ASSERT_EQ(rdiv(a, b), static_cast<int64_t>(std::round(q)));  // std::round: half away from zero
    const int s = static_cast<int>(rng() % 40);
    ASSERT_EQ(rshr(a, s), static_cast<int64_t>(std::floor(std::ldexp(static_cast<long double>(a), -s) + 0.5L)));
  }
}

TEST(Dyadic, FromRatioAndApply) {
  // 1/3 with an 8-bit mantissa: largest m ≤ 255 ⇒ k = 9 (512/3 = 170.67 → 171).
  EXPECT_EQ(dyadic_from_ratio(1, 3, 0, 8), (Dyadic{171, 9}));
  // 3/2^5 = 0.09375 with 16 bits: k = 19 gives 49152 (≤ 65535); k = 20 would give 98304.
  EXPECT_EQ(dyadic_from_ratio(3, 1, 5, 16), (Dyadic{49152, 19}));
  // 1000 with 8 bits: 1000 / 4 = 250 ⇒ (250, −2).
  EXPECT_EQ(dyadic_from_ratio(1000, 1, 0, 8), (Dyadic{250, -2}));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    const int64_t num = 1 + static_cast<int64_t>(rng() % (int64_t{1} << 40));
    const int64_t den = 1 + static_cast<int64_t>(rng() % (int64_t{1} << 30));
    const int bm = rng() % 2 ? 16 : 8;
    const Dyadic d = dyadic_from_ratio(num, den, 3, bm);
    ASSERT_LE(d.m, (int64_t{1} << bm) - 1);
    ASSERT_GE(d.m, int64_t{1} << (bm - 1));
    const long double exact = static_cast<long double>(num) / den / 8.0L;
    const long double got = std::ldexp(static_cast<long double>(d.m), -d.k);
    ASSERT_LE(std::fabs(got - exact) / exact, std::ldexp(1.0L, -bm)) << num << "/" << den;
  }
  EXPECT_EQ(apply_dyadic(10, Dyadic{3, 2}), 8);     // 7.5 → 8
  EXPECT_EQ(apply_dyadic(-10, Dyadic{3, 2}), -7);   // −7.5 → −7 (half up)
  EXPECT_EQ(apply_dyadic(5, Dyadic{3, -4}), 240);   // negative exponent multiplies
  EXPECT_EQ(apply_dyadic(int64_t{1} << 60, Dyadic{(int64_t{1} << 20) + 1, 30}), (int64_t{1} << 50) + (int64_t{1} << 30));
}

}  // namespace
}  // namespace illm
