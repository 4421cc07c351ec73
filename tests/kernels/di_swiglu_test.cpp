// DI-SwiGLU (kernels/reference/di_swiglu.h): sigmoid hand cases and symmetry, accuracy of σ and SiLU against
// float64, the paper form's shared-max underflow (§6.3), and the full row against float64 g·σ(g/α)·u.
#include "kernels/reference/di_swiglu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "tests/kernels/support/ideal_ops.h"

namespace illm {
namespace {

double real_of(Dyadic d) { return std::ldexp(static_cast<double>(d.m), -d.k); }

IntegerSettings paper_settings() { return paper_conformance_settings(); }

// Arguments a_c with scale 1/2^12 (as a 16-bit mantissa dyadic) covering [−16, 16].
const Dyadic kArgScale{32768, 27};
std::vector<int64_t> argument_grid() {
  std::vector<int64_t> a;
  for (int64_t v = -16 * 4096; v <= 16 * 4096; v += 37) a.push_back(v);
  a.push_back(0);
  return a;
}

TEST(DiSigmoid, ZeroIsExactlyHalf) {
  std::vector<int64_t> a = {0};
  std::vector<int32_t> s(1);
  di_sigmoid_row(a, kArgScale, IntegerSettings{}, s);
  EXPECT_EQ(s[0], 1 << 13);  // 2^(p−1)/2 with p = 15
}

TEST(DiSigmoid, StableFormIsSymmetric) {
  // σ(a) + σ(−a): |t|/(|t|+E) and E/(|t|+E), both floored ⇒ the sum is 2^(p−1) or 2^(p−1) − 1.
  const std::vector<int64_t> a = argument_grid();
  std::vector<int64_t> neg;
  for (int64_t v : a) neg.push_back(-v);
  std::vector<int32_t> s(a.size()), t(a.size());
  di_sigmoid_row(a, kArgScale, IntegerSettings{}, s);
  di_sigmoid_row(neg, kArgScale, IntegerSettings{}, t);
  for (size_t i = 0; i < a.size(); ++i) {
    const int32_t sum = s[i] + t[i];
    EXPECT_TRUE(sum == (1 << 14) || sum == (1 << 14) - 1) << a[i];
  }
}

double worst_sigmoid_error(const IntegerSettings& settings) {
  const std::vector<int64_t> a = argument_grid();
  std::vector<int32_t> s(a.size());
  di_sigmoid_row(a, kArgScale, settings, s);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double exact = ideal::sigmoid(static_cast<double>(a[i]) * real_of(kArgScale));
    worst = std::max(worst, std::fabs(s[i] / std::ldexp(1.0, settings.sigmoid_bits - 1) - exact));
  }
  return worst;
}

TEST(DiSigmoid, StableFormAccuracy) {
  // Default (quadratic, p_σ = 15): measured 0.0012 max abs error; linear 2^u 0.0148 (docs/method.md §6.3: 0.014).
  EXPECT_LT(worst_sigmoid_error(IntegerSettings{}), 0.005);
  IntegerSettings linear;
  linear.exp_quadratic = false;
  EXPECT_LT(worst_sigmoid_error(linear), 0.02);
}

TEST(DiSigmoid, PaperFormCollapsesWhenTheRowMaxIsLarge) {
  // §6.3: with one gate at 14 in the row, e^(−M) underflows (E_M = 0) and every σ collapses to 0 or 1: gates
  // below M − ln|t| ≈ 14 − 9.7 get E = 0 ⇒ σ(3) = 0 (true 0.953), σ(−2) = 0 (true 0.119); the stable form stays
  // within the DI-Exp error.
  std::vector<int64_t> a = {3 * 4096, 14 * 4096, -2 * 4096};
  std::vector<int32_t> paper(3), stable(3);
  di_sigmoid_row(a, kArgScale, paper_settings(), paper);
  di_sigmoid_row(a, kArgScale, IntegerSettings{}, stable);
  EXPECT_EQ(paper[0], 0);
  EXPECT_EQ(paper[2], 0);
  EXPECT_EQ(paper[1], 128);  // σ(14) = 1 − 8e−7
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(stable[i] / 16384.0, ideal::sigmoid(a[i] / 4096.0), 0.005);
  // Without the outlier the paper form works (row max small).
  std::vector<int64_t> small = {static_cast<int64_t>(1.5 * 4096), -2 * 4096};
  std::vector<int32_t> ps(2);
  di_sigmoid_row(small, kArgScale, paper_settings(), ps);
  EXPECT_NEAR(ps[0] / 128.0, ideal::sigmoid(1.5), 0.03);
  EXPECT_NEAR(ps[1] / 128.0, ideal::sigmoid(-2.0), 0.03);
}

struct SwigluCase {
  std::vector<uint8_t> gate, up;
  Dyadic gate_scale, up_scale;
  int64_t gate_zero, up_zero;
  std::vector<double> alpha;
  ChannelVector inv_alpha;
};

Dyadic dyadic16(double s) {
  int32_t k = 15 - static_cast<int32_t>(std::floor(std::log2(s)));
  int64_t m = std::llround(std::ldexp(s, k));
  if (m == (int64_t{1} << 16)) { m >>= 1; --k; }
  return Dyadic{m, k};
}

SwigluCase random_case(std::mt19937_64& rng, int n) {
  SwigluCase c;
  c.gate_scale = dyadic16(8.0 / 255);   // gate range ≈ [−5, 3]
  c.gate_zero = 160;
  c.up_scale = dyadic16(4.0 / 255);
  c.up_zero = 128;
  c.inv_alpha.exponent = 22;
  for (int i = 0; i < n; ++i) {
    c.gate.push_back(static_cast<uint8_t>(rng() % 256));
    c.up.push_back(static_cast<uint8_t>(rng() % 256));
    const double alpha = 0.5 + (rng() % 1500) / 1000.0;
    c.inv_alpha.mantissa.push_back(std::llround(std::ldexp(1.0 / alpha, c.inv_alpha.exponent)));
    c.alpha.push_back(std::ldexp(1.0, c.inv_alpha.exponent) / static_cast<double>(c.inv_alpha.mantissa.back()));
  }
  return c;
}

TEST(DiSwiglu, RowTracksFloatSwiglu) {
  std::mt19937_64 rng(31);
  for (int n : {1, 172, 688, 11008}) {
    const SwigluCase c = random_case(rng, n);
    std::vector<uint8_t> out(n);
    const SwigluInput gate{c.gate, c.gate_zero, c.gate_scale}, up{c.up, c.up_zero, c.up_scale};
    const DiRequantResult q = di_swiglu_row(gate, up, c.inv_alpha, IntegerSettings{}, 8, out);
    double worst = 0, max_abs = 1e-30;
    for (int i = 0; i < n; ++i) {
      const double g = real_of(c.gate_scale) * (c.gate[i] - c.gate_zero);
      const double u = real_of(c.up_scale) * (c.up[i] - c.up_zero);
      const double want = ideal::swiglu(g, u, c.alpha[i]);
      const double got = real_of(q.scale) * (out[i] - q.zero_point);
      worst = std::max(worst, std::fabs(got - want));
      max_abs = std::max(max_abs, std::fabs(want));
    }
    // Half an output step is range/510 ≤ max/255 (the range spans both signs); σ's error (≈ 0.001·|g·u|) adds
    // less than another step: bound 2.4/255 of the row max (measured ≈ 1.3/255).
    EXPECT_LT(worst / max_abs, 2.4 / 255) << n;
  }
}

TEST(DiSwiglu, ZeroGateGivesZeroOutput) {
  std::vector<uint8_t> gate(5, 100), up = {0, 50, 100, 200, 255}, out(5, 77);
  ChannelVector inv_alpha{{1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20}, 20};
  const DiRequantResult q = di_swiglu_row(SwigluInput{gate, 100, Dyadic{1, 5}}, SwigluInput{up, 100, Dyadic{1, 6}},
                                          inv_alpha, IntegerSettings{}, 8, out);
  for (uint8_t c : out) EXPECT_EQ(c, q.zero_point);
}

TEST(DiSwiglu, RejectsMismatchedLengths) {
  std::vector<uint8_t> gate(3), up(2), out(3);
  ChannelVector inv_alpha{{1, 1, 1}, 0};
  EXPECT_THROW(di_swiglu_row(SwigluInput{gate, 0, Dyadic{1, 0}}, SwigluInput{up, 0, Dyadic{1, 0}}, inv_alpha,
                             IntegerSettings{}, 8, out),
               Error);
}

}  // namespace
}  // namespace illm
