// TRIP channel factors at a site requantization (kernels/trip_requant.h): a hand-derived row, the reductions to
// the plain DI_REQUANT (α ≡ K, channels with α_c = K), random rows against the plain codes at the 2^s finer
// scale, the site operators (DI-Norm, DI-SwiGLU, attention) with α ≡ K equal to the plain operators, and the checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/trip_requant.h"

namespace illm {
namespace {

using Rng = std::mt19937_64;

// Hand-derived: v = {−16, 1, 10, 14, −3} with real value v/2 (m_in = 1, k_in = 1), 4-bit codes, b_m = 16.
// Plain plan: range 30, e = ⌊log2(65535·15/30)⌋ = 14, m_y = ⌈30·2^14/15⌉ = 2^15, scale (2^15, 15) = 1.0,
// F = 57, A = 2^(57+14)/2^15 = 2^56, so conv(x) = rshr(x·2^56, 57) = rshr(x, 1); z = −rshr(−16, 1) = 8.
// TRIP K = 2, α = {2, 0, 1, 2, 1} (s = K − α = {0, 2, 1, 0, 1}): Y_c = sat(rshr(v_c, 1 − s_c) + 8, 0, 15):
//   c0: −8 + 8 = 0; c1: 1·2 + 8 = 10; c2: 10 + 8 = 18 → 15 (saturates); c3: 7 + 8 = 15; c4: −3 + 8 = 5.
// α_min = 0, E = 2: X_c = (Y_c − 8)·2^α_c + 8·4 = {0, 34, 46, 60, 26}, zero point 32, scale (2^15, 17):
// real values (X − 32)/4 = {−8, 0.5, 3.5, 7, −1.5}: c1 and c4 exact where the plain codes round 0.5 → 1, −1.5 → −1.
TEST(TripRequant, HandDerivedRow) {
  const std::vector<int64_t> v = {-16, 1, 10, 14, -3};
  const std::vector<int8_t> alpha = {2, 0, 1, 2, 1};
  std::vector<uint16_t> codes(v.size());
  const DiRequantResult r = di_requant_trip(v, 1, 1, 4, 16, codes, RequantClip{}, TripFactors{alpha, 2});
  EXPECT_EQ(codes, (std::vector<uint16_t>{0, 34, 46, 60, 26}));
  EXPECT_EQ(r.zero_point, 32);
  EXPECT_EQ(r.scale, (Dyadic{32768, 17}));
  EXPECT_EQ(trip_extra_bits(TripFactors{alpha, 2}), 2);
  std::vector<uint16_t> plain(v.size());
  const DiRequantResult p = di_requant(v, 1, 1, 4, 16, std::span<uint16_t>(plain));
  EXPECT_EQ(plain, (std::vector<uint16_t>{0, 9, 13, 15, 7}));  // rshr(v, 1) + 8
  EXPECT_EQ(p.zero_point, 8);
  EXPECT_EQ(p.scale, (Dyadic{32768, 15}));
}

std::vector<int64_t> random_row(Rng& rng, size_t n, int bits) {
  std::uniform_int_distribution<int64_t> value(-(int64_t{1} << bits), int64_t{1} << bits);
  std::vector<int64_t> v(n);
  for (int64_t& x : v) x = value(rng);
  return v;
}

// α ≡ K: E = 0 and the codes, zero point and scale are the plain DI_REQUANT's (clipped or not). Channels with
// α_c = K keep the plain code: X_c = (Y_c − z)·2^E + z·2^E. Every other channel equals the plain code of the value
// 2^s_c · v_c (same plan), i.e. the finer step, saturated to the plain range.
TEST(TripRequant, RandomRowsAgainstThePlainRequant) {
  Rng rng(12);
  const RequantClip clips[] = {{}, {13, 4}, {52429, 16}};
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = 1 + rng() % 70;
    const int out_bits = 2 + static_cast<int>(rng() % 7);
    const int32_t K = 1 + static_cast<int32_t>(rng() % 8);
    const int value_bits = 3 + static_cast<int>(rng() % 50);
    const RequantClip clip = clips[trial % 3];
    const std::vector<int64_t> v = random_row(rng, n, value_bits);
    const int64_t m_in = 1 + static_cast<int64_t>(rng() % 60000);
    const int32_t k_in = static_cast<int32_t>(rng() % 40);
    std::vector<uint16_t> plain(n), trip(n);
    const DiRequantResult p = di_requant(v, m_in, k_in, out_bits, 16, std::span<uint16_t>(plain), clip);

    const std::vector<int8_t> all_k(n, static_cast<int8_t>(K));
    const DiRequantResult same = di_requant_trip(v, m_in, k_in, out_bits, 16, trip, clip, TripFactors{all_k, K});
    ASSERT_EQ(trip, plain) << "trial " << trial;
    ASSERT_EQ(same, p) << "trial " << trial;

    std::vector<int8_t> alpha(n);
    for (int8_t& a : alpha) a = static_cast<int8_t>(rng() % (K + 1));
    const TripFactors factors{alpha, K};
    const int32_t extra = trip_extra_bits(factors);
    if (out_bits + extra > 16) continue;
    const DiRequantResult t = di_requant_trip(v, m_in, k_in, out_bits, 16, trip, clip, factors);
    ASSERT_EQ(t.zero_point, p.zero_point << extra);
    ASSERT_EQ(t.scale, (Dyadic{p.scale.m, p.scale.k + extra}));
    int64_t lo = 0, hi = 0;
    for (const int64_t x : v) lo = std::min(lo, x), hi = std::max(hi, x);
    const RequantPlan plan = plan_requant(lo, hi, m_in, k_in, out_bits, 16, clip);
    const int32_t alpha_min = K - extra;
    for (size_t c = 0; c < n; ++c) {
      const int s = K - alpha[c];
      // The finer step as the plain plan with 2^s more fraction: the 128-bit product, then the rounding shift.
      const __int128 y = std::clamp(rshr(v[c], plan.normalize), plan.input_min, plan.input_max);
      const __int128 prod = y * plan.multiplier;
      const int shift = plan.fraction_bits - s;
      const __int128 rounded = shift <= 0 ? prod * (__int128{1} << -shift)  // all-zero rows: A = 0, F = 0
                                          : (prod + (__int128{1} << (shift - 1))) >> shift;
      const int64_t y_code = std::clamp<int64_t>(static_cast<int64_t>(rounded) + p.zero_point, 0,
                                                 (int64_t{1} << out_bits) - 1);
      const int64_t want = (y_code - p.zero_point) * (int64_t{1} << (alpha[c] - alpha_min)) + (p.zero_point << extra);
      ASSERT_EQ(trip[c], want) << "trial " << trial << " channel " << c;
      if (alpha[c] == K) {
        ASSERT_EQ(trip[c], plain[c] << extra) << "trial " << trial << " channel " << c;
      }
      ASSERT_LE(trip[c], ((int64_t{1} << out_bits) - 1) << extra);
    }
  }
}

TEST(TripRequant, ChecksNameTheProblem) {
  const std::vector<int64_t> v = {1, 2, 3};
  std::vector<uint16_t> codes(3);
  const std::vector<int8_t> bad = {0, 4, 1}, ok = {0, 1, 2};
  EXPECT_THROW(di_requant_trip(v, 1, 0, 4, 16, codes, {}, TripFactors{bad, 3}), Error);      // α > K
  EXPECT_THROW(di_requant_trip(v, 1, 0, 4, 16, codes, {}, TripFactors{ok, 9}), Error);       // K > 8
  EXPECT_THROW(di_requant_trip(v, 1, 0, 15, 16, codes, {}, TripFactors{ok, 2}), Error);      // 15 + 2 > 16 bits
  const std::vector<int8_t> short_alpha = {0, 1};
  EXPECT_THROW(di_requant_trip(v, 1, 0, 4, 16, codes, {}, TripFactors{short_alpha, 2}), Error);
  try {
    di_requant_trip(v, 1, 0, 4, 16, codes, {}, TripFactors{bad, 3});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("alpha[1]"), std::string::npos) << e.what();
  }
}

// The site operators with α ≡ K are the plain operators bit for bit; with mixed α their codes are E bits wider.
TEST(TripRequant, SiteOperatorsWithAlphaEqualKAreThePlainOperators) {
  Rng rng(3);
  IntegerSettings settings;
  const int32_t rows = 3, cols = 37;
  ResidualStream h;
  h.rows = rows;
  h.cols = cols;
  h.codes.resize(static_cast<size_t>(rows) * cols);
  for (int16_t& c : h.codes) c = static_cast<int16_t>(static_cast<int64_t>(rng() % 60001) - 30000);
  h.scales.assign(rows, Dyadic{40000, 30});
  ChannelVector gamma;
  gamma.exponent = 14;
  for (int32_t c = 0; c < cols; ++c) gamma.mantissa.push_back(8000 + static_cast<int64_t>(rng() % 16000));
  const std::vector<int8_t> all_k(cols, 3);
  QuantizedActivation plain, trip;
  di_norm_rows(h, gamma, Dyadic{1, 20}, settings, 4, plain, RequantClip{13, 4});
  di_norm_rows_trip(h, gamma, Dyadic{1, 20}, settings, 4, trip, RequantClip{13, 4}, TripFactors{all_k, 3});
  EXPECT_EQ(trip.codes, plain.codes);
  EXPECT_EQ(trip.zero_points, plain.zero_points);
  EXPECT_EQ(trip.scales, plain.scales);
  EXPECT_EQ(trip.bits, 4);

  std::vector<int8_t> mixed(cols);
  for (int8_t& a : mixed) a = static_cast<int8_t>(1 + rng() % 3);  // α_min = 1 ⇒ E = 2
  mixed[5] = 1;
  di_norm_rows_trip(h, gamma, Dyadic{1, 20}, settings, 4, trip, {}, TripFactors{mixed, 3});
  EXPECT_EQ(trip.bits, 6);
  for (const uint16_t c : trip.codes) EXPECT_LT(c, 64);

  QuantizedActivation gate, up, swiglu_plain, swiglu_trip;
  resize_activation(gate, rows, cols, 8);
  resize_activation(up, rows, cols, 8);
  for (QuantizedActivation* a : {&gate, &up}) {
    for (uint16_t& c : a->codes) c = static_cast<uint16_t>(rng() % 256);
    for (int32_t& z : a->zero_points) z = static_cast<int32_t>(rng() % 256);
    for (Dyadic& s : a->scales) s = Dyadic{20000 + static_cast<int64_t>(rng() % 30000), 20};
  }
  ChannelVector inv_alpha;
  inv_alpha.exponent = 20;
  inv_alpha.mantissa.assign(cols, int64_t{1} << 20);
  di_swiglu_rows(gate, up, inv_alpha, settings, 4, swiglu_plain, {});
  di_swiglu_rows_trip(gate, up, inv_alpha, settings, 4, swiglu_trip, {}, TripFactors{all_k, 3});
  EXPECT_EQ(swiglu_trip.codes, swiglu_plain.codes);
  EXPECT_EQ(swiglu_trip.zero_points, swiglu_plain.zero_points);
  EXPECT_EQ(swiglu_trip.scales, swiglu_plain.scales);
}

}  // namespace
}  // namespace illm
