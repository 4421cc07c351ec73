// Clipped DI_REQUANT (docs/integer-semantics.md "## Clipped DI_REQUANT"): hand-derived rows (ratios 15/16, 13/16,
// the never-empty rule), clip off and ratio 1 equal to the plain DI_REQUANT, and random rows (magnitudes up to
// INT64 extremes, ratios down to 1/64 and 16-bit mantissas) against an independent transcription of the spec that
// computes every step, the code conversion included, exactly in 128 bits (no saturation window).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "kernels/requant.h"

namespace illm {
namespace {

using i128 = __int128;

i128 rshr_exact(i128 a, int s) { return s <= 0 ? a * (i128{1} << -s) : (a + (i128{1} << (s - 1))) >> s; }
int bit_length(i128 x) {  // x >= 0
  int n = 0;
  while (x > 0) x >>= 1, ++n;
  return n;
}
i128 ceil_div(i128 a, i128 b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
i128 round_div(i128 a, i128 b) { return a >= 0 ? (a + b / 2) / b : -((-a + b / 2) / b); }
// ⌊log2(a/b)⌋ for a, b >= 1.
int floor_log2_ratio(i128 a, i128 b) {
  int e = bit_length(a) - bit_length(b);
  const bool below = e >= 0 ? a < (b << e) : (a << -e) < b;
  return below ? e - 1 : e;
}

struct SpecResult {
  std::vector<int64_t> codes;
  int64_t zero_point = 0;
  Dyadic scale;
};

// The asymmetric DI_REQUANT of §3.4 with the clipped range, transcribed from the spec text.
SpecResult spec_requant(const std::vector<int64_t>& v, int64_t m_in, int32_t k_in, int n_o, int b_m, RequantClip clip) {
  i128 lo = 0, hi = 0;
  for (const int64_t x : v) lo = std::min<i128>(lo, x), hi = std::max<i128>(hi, x);
  if (clip.enabled()) {
    const i128 hi_c = rshr_exact(hi * clip.m, clip.k), lo_c = -rshr_exact(-lo * clip.m, clip.k);
    if (hi_c != lo_c) lo = lo_c, hi = hi_c;
  }
  SpecResult out;
  out.codes.assign(v.size(), 0);
  const i128 range = hi - lo, q = (i128{1} << n_o) - 1;
  if (range == 0) {
    out.scale = Dyadic{1, 0};
    return out;
  }
  const int shift = std::max(0, bit_length(range) - 1 - 30);
  const i128 lo_n = rshr_exact(lo, shift), hi_n = rshr_exact(hi, shift);
  const i128 range_n = std::max<i128>(hi_n - lo_n, 1);
  const int e = floor_log2_ratio(((i128{1} << b_m) - 1) * q, m_in * range_n);
  const i128 m_y = e >= 0 ? ceil_div((m_in * range_n) << e, q) : ceil_div(m_in * range_n, q << -e);
  const int f = 61 - n_o;
  const i128 a = f + e >= 0 ? round_div(i128{m_in} << (f + e), m_y) : round_div(m_in, m_y << -(f + e));
  const auto conv = [&](i128 x) { return rshr_exact(x * a, f); };
  const i128 z = -conv(lo_n);
  for (size_t j = 0; j < v.size(); ++j)
    out.codes[j] = static_cast<int64_t>(std::clamp<i128>(conv(rshr_exact(v[j], shift)) + z, 0, q));
  out.zero_point = static_cast<int64_t>(z);
  out.scale = Dyadic{static_cast<int64_t>(m_y), k_in - shift + e};
  return out;
}

std::vector<int32_t> requant(const std::vector<int64_t>& v, int64_t m_in, int32_t k_in, int n_o, int b_m,
                             RequantClip clip, DiRequantResult* r) {
  std::vector<int32_t> y(v.size());
  *r = di_requant(v, m_in, k_in, n_o, b_m, std::span<int32_t>(y), clip);
  return y;
}

TEST(ClippedDiRequant, RatioFifteenSixteenthsHandDerived) {
  // lo = −32, hi = 64: hi_c = rshr(64·15, 4) = 60, lo_c = −rshr(32·15, 4) = −30, R = 90, Q_o = 15, b_m = 8:
  // e = ⌊log2(255·15/90)⌋ = 5, m_y = ⌈90·2^5/15⌉ = 192 (scale 6, exact), A = rdiv(2^62, 192), z = −conv(−30) = 5;
  // −32 → −5.33 + 5 → 0 (clipped), 16 → 2.67 → 3 + 5 = 8, 64 → 10.67 → 11 + 5 = 16 → saturates at 15.
  DiRequantResult r;
  const std::vector<int32_t> y = requant({-32, 0, 16, 64}, 1, 0, 4, 8, RequantClip{15, 4}, &r);
  EXPECT_EQ(y, (std::vector<int32_t>{0, 5, 8, 15}));
  EXPECT_EQ(r.zero_point, 5);
  EXPECT_EQ(r.scale, (Dyadic{192, 5}));
  // Unclipped, the same row has R = 96: m_y = ⌈96·2^5/15⌉ = 205 and 16 → 16·15/96·(192/205)… = code 7.
  const std::vector<int32_t> plain = requant({-32, 0, 16, 64}, 1, 0, 4, 8, RequantClip{}, &r);
  EXPECT_EQ(plain, (std::vector<int32_t>{0, 5, 7, 15}));
  EXPECT_EQ(r.scale, (Dyadic{205, 5}));
}

TEST(ClippedDiRequant, RatioThirteenSixteenthsHandDerived) {
  // m_in = 3, k_in = 2, n_o = 8, b_m = 16. lo = −100, hi = 50: hi_c = rshr(650, 4) = 41, lo_c = −rshr(1300, 4) = −81,
  // R = 122; e = ⌊log2(65535·255/366)⌋ = 15, m_y = ⌈366·2^15/255⌉ = 47032, k_y = 17; z = 81·255/122 → 169;
  // 7 → 14.6 → 15 + 169 = 184; −100 and −81 → 0; 41, 42 and 50 → 255 (41 maps to 254.7: the ceiling mantissa).
  DiRequantResult r;
  const std::vector<int32_t> y = requant({-100, 7, 50, -81, 41, 42}, 3, 2, 8, 16, RequantClip{13, 4}, &r);
  EXPECT_EQ(y, (std::vector<int32_t>{0, 184, 255, 0, 255, 255}));
  EXPECT_EQ(r.zero_point, 169);
  EXPECT_EQ(r.scale, (Dyadic{47032, 17}));
}

TEST(ClippedDiRequant, NeverClipsARowToNothing) {
  // Ratio 1/16 of a row in [0, 7]: hi_c = rshr(7, 4) = 0 = lo_c, so the row keeps its range; likewise [−3, 5].
  for (const std::vector<int64_t>& v : {std::vector<int64_t>{0, 7}, std::vector<int64_t>{-3, 5, 1}}) {
    DiRequantResult clipped, plain;
    const std::vector<int32_t> a = requant(v, 1, 0, 4, 8, RequantClip{1, 4}, &clipped);
    const std::vector<int32_t> b = requant(v, 1, 0, 4, 8, RequantClip{}, &plain);
    EXPECT_EQ(a, b);
    EXPECT_EQ(clipped, plain);
  }
  DiRequantResult r;
  EXPECT_EQ(requant({0, 7}, 1, 0, 4, 8, RequantClip{1, 4}, &r), (std::vector<int32_t>{0, 15}));
  EXPECT_EQ(r.scale, (Dyadic{239, 9}));  // ⌈7·2^9/15⌉ = 239: the unclipped range
}

TEST(ClippedDiRequant, InvalidRatiosAreRejected) {
  const std::vector<int64_t> v = {1, -2};
  std::vector<int32_t> y(2);
  for (const RequantClip bad : {RequantClip{17, 4}, RequantClip{-1, 4}, RequantClip{1, -1}, RequantClip{1, 31}})
    EXPECT_THROW(di_requant(v, 1, 0, 8, 16, std::span<int32_t>(y), bad), Error);
}

// Random rows against the 128-bit transcription; ratio 1 (m = 2^k) and clip off against the plain DI_REQUANT.
TEST(ClippedDiRequant, EqualsExactTranscriptionOnRandomRows) {
  std::mt19937_64 rng(2026);
  const RequantClip ratios[] = {{15, 4}, {14, 4}, {13, 4}, {12, 4}, {10, 4}, {1, 6}, {52429, 16}, {1, 0}, {65536, 16}};
  int rows = 0, saturated = 0;
  for (int row = 0; row < 3000; ++row) {
    const int n = 1 + static_cast<int>(rng() % 40);
    const int mag_bits = 1 + static_cast<int>(rng() % 63);
    const int sign_mode = static_cast<int>(rng() % 3);  // mixed, non-negative, non-positive
    std::vector<int64_t> v(n);
    for (auto& x : v) {
      x = static_cast<int64_t>(rng() >> (64 - mag_bits));
      if (sign_mode == 2 || (sign_mode == 0 && rng() % 2)) x = -x;
    }
    if (row % 97 == 0) v[0] = std::numeric_limits<int64_t>::min();
    if (row % 89 == 0) v[n - 1] = std::numeric_limits<int64_t>::max();
    const int64_t m_in = 1 + static_cast<int64_t>(rng() % ((int64_t{1} << 31) - 1));
    const int32_t k_in = static_cast<int32_t>(rng() % 80) - 20;
    const int n_o = std::vector<int>{4, 8, 16}[rng() % 3];
    const int b_m = std::vector<int>{8, 16, 24}[rng() % 3];
    const RequantClip clip = ratios[rng() % std::size(ratios)];
    DiRequantResult r;
    const std::vector<int32_t> y = requant(v, m_in, k_in, n_o, b_m, clip, &r);
    const SpecResult want = spec_requant(v, m_in, k_in, n_o, b_m, clip);
    ASSERT_EQ(std::vector<int64_t>(y.begin(), y.end()), want.codes) << "row " << row;
    ASSERT_EQ(r.zero_point, want.zero_point) << "row " << row;
    ASSERT_EQ(r.scale, want.scale) << "row " << row;
    if (clip.m == (int64_t{1} << clip.k)) {  // ratio 1: the plain DI_REQUANT bit for bit
      DiRequantResult plain;
      EXPECT_EQ(requant(v, m_in, k_in, n_o, b_m, RequantClip{}, &plain), y) << "row " << row;
      EXPECT_EQ(plain, r);
    }
    saturated += std::count(y.begin(), y.end(), (1 << n_o) - 1) > 0 ? 1 : 0;
    ++rows;
  }
  EXPECT_EQ(rows, 3000);
  EXPECT_GT(saturated, 1000);  // the clipped rows do saturate
}

// The off state (m = 0) is the existing DI_REQUANT: equal to the unclipped transcription.
TEST(ClippedDiRequant, OffEqualsUnclippedTranscription) {
  std::mt19937_64 rng(7);
  for (int row = 0; row < 500; ++row) {
    const int n = 1 + static_cast<int>(rng() % 30);
    std::vector<int64_t> v(n);
    for (auto& x : v) x = static_cast<int64_t>(rng() >> (1 + rng() % 60)) * (rng() % 2 ? 1 : -1);
    const int64_t m_in = 1 + static_cast<int64_t>(rng() % 1000);
    DiRequantResult r;
    const std::vector<int32_t> y = requant(v, m_in, 5, 8, 16, RequantClip{}, &r);
    const SpecResult want = spec_requant(v, m_in, 5, 8, 16, RequantClip{});
    ASSERT_EQ(std::vector<int64_t>(y.begin(), y.end()), want.codes) << "row " << row;
    ASSERT_EQ(r.zero_point, want.zero_point);
    ASSERT_EQ(r.scale, want.scale);
  }
}

}  // namespace
}  // namespace illm
