// DI-Norm (kernels/reference/di_norm.h): Appendix B invariants, hand cases and accuracy against float64 RMSNorm,
// in the default per-token mode and the paper's static per-channel 8-bit mode.
#include "kernels/reference/di_norm.h"

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

Dyadic dyadic16(double s) {
  int32_t k = 15 - static_cast<int32_t>(std::floor(std::log2(s)));
  int64_t m = std::llround(std::ldexp(s, k));
  if (m == (int64_t{1} << 16)) { m >>= 1; --k; }
  return Dyadic{m, k};
}

ChannelVector gamma_of(const std::vector<double>& g, int32_t exponent = 14) {
  ChannelVector v;
  v.exponent = exponent;
  for (double x : g) v.mantissa.push_back(std::llround(std::ldexp(x, exponent)));
  return v;
}

// A residual row with a few strong outlier channels (LLaMA-like), as int16 symmetric codes.
struct Residual {
  std::vector<int16_t> codes;
  Dyadic scale;
  std::vector<double> real;  // dequantized
};

Residual random_residual(std::mt19937_64& rng, int channels, double typical) {
  std::normal_distribution<double> normal(0.0, typical);
  std::vector<double> x(channels);
  for (auto& v : x) v = normal(rng);
  for (int i = 0; i < std::max(1, channels / 200); ++i) x[rng() % channels] *= 60.0;  // outlier channels
  double max_abs = 1e-30;
  for (double v : x) max_abs = std::max(max_abs, std::fabs(v));
  Residual r;
  r.scale = dyadic16(max_abs / 32767.0);
  const double s = real_of(r.scale);
  for (double v : x) r.codes.push_back(static_cast<int16_t>(std::clamp<long long>(std::llround(v / s), -32767, 32767)));
  for (int16_t c : r.codes) r.real.push_back(c * s);
  return r;
}

std::vector<double> dequantize(const std::vector<int32_t>& codes, const DiRequantResult& q) {
  std::vector<double> y;
  for (int32_t c : codes) y.push_back(real_of(q.scale) * static_cast<double>(c - q.zero_point));
  return y;
}

const Dyadic kEps = Dyadic{21475, 31};  // ≈ 1.0e−5

TEST(DiNorm, AllZeroRowGivesZeros) {
  std::vector<int16_t> zeros(172, 0);
  std::vector<uint8_t> out(172, 99);
  const DiRequantResult q = di_norm_row(zeros, Dyadic{3, 4}, gamma_of(std::vector<double>(172, 1.0)), kEps,
                                        IntegerSettings{}, 8, out);
  EXPECT_EQ(q.zero_point, 0);
  for (uint8_t c : out) EXPECT_EQ(c, 0);
}

TEST(DiNorm, InvariantToPerTokenRescaling) {
  std::mt19937_64 rng(3);
  for (int channels : {1, 2, 172, 4096}) {
    Residual r = random_residual(rng, channels, 0.5);
    for (auto& c : r.codes) c = static_cast<int16_t>(c / 2);  // headroom for doubling
    std::vector<double> g(channels);
    for (auto& x : g) x = 0.5 + (rng() % 1000) / 1000.0;
    const ChannelVector gamma = gamma_of(g);
    std::vector<int16_t> doubled;
    for (int16_t c : r.codes) doubled.push_back(static_cast<int16_t>(2 * c));
    std::vector<uint8_t> a(channels), b(channels), c(channels);
    // Same real values (codes ×2, scale ÷2): bit-identical, with ε.
    const DiRequantResult qa = di_norm_row(r.codes, r.scale, gamma, kEps, IntegerSettings{}, 8, a);
    const DiRequantResult qb = di_norm_row(doubled, Dyadic{r.scale.m, r.scale.k + 1}, gamma, kEps, IntegerSettings{}, 8, b);
    EXPECT_EQ(qa, qb);
    EXPECT_EQ(a, b);
    // Real values doubled, no ε: RMSNorm is scale invariant, so again bit-identical.
    const DiRequantResult qc = di_norm_row(r.codes, r.scale, gamma, Dyadic{0, 0}, IntegerSettings{}, 8, c);
    const DiRequantResult qd = di_norm_row(doubled, r.scale, gamma, Dyadic{0, 0}, IntegerSettings{}, 8, b);
    EXPECT_EQ(qc, qd);
    EXPECT_EQ(c, b);
  }
}

TEST(DiNorm, SingleChannelIsSignTimesGamma) {
  // C = 1: x / sqrt(x²) · γ = ±γ (ε negligible): codes reconstruct ±0.75 exactly up to the output step.
  std::vector<int16_t> x = {-1234};
  std::vector<int32_t> out(1);
  const DiRequantResult q = di_norm_row(x, Dyadic{1, 0}, gamma_of({0.75}), Dyadic{0, 0}, IntegerSettings{}, 16, out);
  EXPECT_NEAR(dequantize(out, q)[0], -0.75, 1e-4);
}

TEST(DiNorm, HandCaseThreeFourFive) {
  // x = (3, 4) (real), rms = sqrt((9 + 16)/2) = 3.5355; y = (0.8485, 1.1314) with γ = 1.
  std::vector<int16_t> x = {3, 4};
  std::vector<int32_t> out(2);
  const DiRequantResult q = di_norm_row(x, Dyadic{1, 0}, gamma_of({1.0, 1.0}), Dyadic{0, 0}, IntegerSettings{}, 16, out);
  const std::vector<double> y = dequantize(out, q);
  EXPECT_NEAR(y[0], 3.0 / std::sqrt(12.5), 1e-4);
  EXPECT_NEAR(y[1], 4.0 / std::sqrt(12.5), 1e-4);
}

double worst_error_relative_to_max(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 1e-30;
  for (size_t c = 0; c < got.size(); ++c) {
    err = std::max(err, std::fabs(got[c] - want[c]));
    scale = std::max(scale, std::fabs(want[c]));
  }
  return err / scale;
}

TEST(DiNorm, PerTokenModeTracksFloatRmsNorm) {
  std::mt19937_64 rng(17);
  for (int channels : {1, 172, 288, 4096}) {
    for (double typical : {1e-3, 0.05, 3.0}) {
      const Residual r = random_residual(rng, channels, typical);
      std::vector<double> g(channels);
      for (auto& x : g) x = 0.2 + (rng() % 2000) / 1000.0;
      const ChannelVector gamma = gamma_of(g);
      std::vector<double> g_exact;
      for (int64_t m : gamma.mantissa) g_exact.push_back(std::ldexp(static_cast<double>(m), -gamma.exponent));
      const std::vector<double> want = ideal::rmsnorm(r.real, g_exact, real_of(kEps));
      // 16-bit output: the core's own error (F = 14 fraction bits) is visible, bound 2e−4 of the row max.
      std::vector<int32_t> out16(channels);
      const DiRequantResult q16 = di_norm_row(r.codes, r.scale, gamma, kEps, IntegerSettings{}, 16, out16);
      EXPECT_LT(worst_error_relative_to_max(dequantize(out16, q16), want), 2e-4) << channels << " " << typical;
      // 8-bit output (what the next DI-MatMul gets): ≤ about one output step, 1/255 of the range ≤ 2/255 of max.
      std::vector<uint8_t> out8(channels);
      const DiRequantResult q8 = di_norm_row(r.codes, r.scale, gamma, kEps, IntegerSettings{}, 8, out8);
      std::vector<int32_t> wide(out8.begin(), out8.end());
      EXPECT_LT(worst_error_relative_to_max(dequantize(wide, q8), want), 1.0 / 255 + 1e-4) << channels;
    }
  }
}

TEST(DiNorm, PaperPerChannelModeTracksFloatRmsNorm) {
  std::mt19937_64 rng(23);
  for (int channels : {1, 172, 1024}) {
    const Residual r = random_residual(rng, channels, 0.5);
    // Static per-channel 8-bit scales "calibrated" on this row's magnitudes (asymmetric, range includes 0).
    std::vector<Dyadic> scales;
    std::vector<int32_t> zero_points;
    for (double v : r.real) {
      const double lo = std::min(0.0, v * 1.2), hi = std::max(0.0, v * 1.2);
      const double s = std::max(hi - lo, 1e-6) / 255.0;
      scales.push_back(dyadic16(s));
      zero_points.push_back(static_cast<int32_t>(std::llround(-lo / real_of(scales.back()))));
    }
    std::vector<uint8_t> codes(channels);
    norm_input_per_channel(r.codes, r.scale, zero_points, scales, 8, codes);
    std::vector<double> x8;
    for (int c = 0; c < channels; ++c) x8.push_back(real_of(scales[c]) * (codes[c] - zero_points[c]));
    for (int c = 0; c < channels; ++c) ASSERT_NEAR(x8[c], r.real[c], real_of(scales[c]) * 0.5 + 1e-12);
    const ChannelVector gamma = gamma_of(std::vector<double>(channels, 1.0));
    const std::vector<double> want = ideal::rmsnorm(x8, std::vector<double>(channels, 1.0), real_of(kEps));
    std::vector<uint8_t> out(channels);
    const DiRequantResult q = di_norm_row_per_channel(codes, zero_points, scales, gamma, kEps, IntegerSettings{}, 8, out);
    std::vector<int32_t> wide(out.begin(), out.end());
    EXPECT_LT(worst_error_relative_to_max(dequantize(wide, q), want), 1.0 / 255 + 1e-3) << channels;
    // 16-bit output: only the core's rounding remains (exact channel alignment).
    std::vector<int32_t> out16(channels);
    const DiRequantResult q16 =
        di_norm_row_per_channel(codes, zero_points, scales, gamma, kEps, IntegerSettings{}, 16, out16);
    EXPECT_LT(worst_error_relative_to_max(dequantize(out16, q16), want), 2e-4) << channels;
  }
}

TEST(DiNorm, PerChannelFallsBackToLossyAlignmentForHugeExponentSpreads) {
  // Channel scales 40000/2^25 and 40000/2^75: exact alignment would need μ = 40000·2^50 ≥ 2^40, so the paper's
  // rule (K = min k, μ = rshr(m, k − K)) applies; the tiny channel rounds to 0 and the big one normalizes to ±γ·√2.
  std::vector<uint8_t> codes = {200, 50};
  std::vector<int32_t> zero_points = {100, 100};
  std::vector<Dyadic> scales = {Dyadic{40000, 25}, Dyadic{40000, 75}};
  std::vector<int32_t> out(2);
  const DiRequantResult q = di_norm_row_per_channel(codes, zero_points, scales, gamma_of({1.0, 1.0}), Dyadic{0, 0},
                                                    IntegerSettings{}, 16, out);
  EXPECT_NEAR(real_of(q.scale) * (out[0] - q.zero_point), std::sqrt(2.0), 1e-3);
  EXPECT_NEAR(real_of(q.scale) * (out[1] - q.zero_point), 0.0, 1e-3);
}

TEST(DiNorm, NormInputPerChannelHandCase) {
  // h = 100 at scale 1/4 (real 25), channel scale 1/2 with z = 10: code = rdiv(25 / 0.5) + 10 = 60.
  // h = −3 at 1/4 (real −0.75), scale 1/2, z = 10: −1.5 → rdiv −2 (half away from zero) → 8.
  std::vector<int16_t> h = {100, -3, 30000};
  std::vector<int32_t> z = {10, 10, 0};
  std::vector<Dyadic> s = {Dyadic{1, 1}, Dyadic{1, 1}, Dyadic{1, 1}};
  std::vector<uint8_t> out(3);
  norm_input_per_channel(h, Dyadic{1, 2}, z, s, 8, out);
  EXPECT_EQ(out[0], 60);
  EXPECT_EQ(out[1], 8);
  EXPECT_EQ(out[2], 255);  // saturated
}

TEST(DiNorm, RejectsBadArguments) {
  std::vector<int16_t> x(4, 1);
  std::vector<uint8_t> out(4);
  EXPECT_THROW(di_norm_row(x, Dyadic{1, 0}, gamma_of({1.0, 1.0}), kEps, IntegerSettings{}, 8, out), Error);
  std::vector<uint8_t> short_out(3);
  EXPECT_THROW(di_norm_row(x, Dyadic{1, 0}, gamma_of({1, 1, 1, 1}), kEps, IntegerSettings{}, 8, short_out), Error);
  EXPECT_THROW(di_norm_row(x, Dyadic{0, 0}, gamma_of({1, 1, 1, 1}), kEps, IntegerSettings{}, 8, out), Error);
}

}  // namespace
}  // namespace illm
