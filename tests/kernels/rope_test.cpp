// Integer RoPE (kernels/reference/rope.h) and its float64 tables (formats/rope_tables.h): table error
// ≤ 2^−15, hand cases for the rounding, and the rotation against a float64 rotation.
#include "kernels/reference/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "formats/rope_tables.h"

namespace illm {
namespace {

RopeTableView view_of(const RopeTables& t) {
  return RopeTableView{t.cos, t.sin, t.max_positions, t.half_dim, t.frac_bits};
}

TEST(RopeTables, DefaultInverseFrequencies) {
  const std::vector<double> f = rope_default_inv_freq(8, 10000.0);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[1], 0.1, 1e-15);   // 10000^(−2/8)
  EXPECT_NEAR(f[2], 0.01, 1e-15);
  EXPECT_NEAR(f[3], 0.001, 1e-15);
  EXPECT_THROW(rope_default_inv_freq(7, 10000.0), Error);
}

TEST(RopeTables, EntriesWithinHalfAnLsbOfFloat64) {
  for (int head_dim : {8, 64, 128}) {
    const std::vector<double> inv_freq = rope_default_inv_freq(head_dim, 10000.0);
    const RopeTables t = build_rope_tables(inv_freq, 512);
    ASSERT_EQ(t.cos.size(), 512u * head_dim / 2);
    double worst = 0;
    for (int p = 0; p < 512; ++p) {
      for (int i = 0; i < head_dim / 2; ++i) {
        const double angle = p * inv_freq[i];
        worst = std::max(worst, std::fabs(t.cos[p * head_dim / 2 + i] / 16384.0 - std::cos(angle)));
        worst = std::max(worst, std::fabs(t.sin[p * head_dim / 2 + i] / 16384.0 - std::sin(angle)));
      }
    }
    EXPECT_LE(worst, std::ldexp(1.0, -15));
  }
  // Position 0: cos = 1.0 = 16384 exactly, sin = 0.
  const RopeTables t = build_rope_tables(rope_default_inv_freq(4, 10000.0), 3);
  EXPECT_EQ(t.cos[0], 16384);
  EXPECT_EQ(t.sin[0], 0);
  EXPECT_THROW(build_rope_tables(rope_default_inv_freq(4, 10000.0), 3, 15), Error);
}

TEST(Rope, PositionZeroIsIdentity) {
  const RopeTables t = build_rope_tables(rope_default_inv_freq(8, 10000.0), 4);
  std::vector<int32_t> x = {1, -2, 32767, -32768, 5, 6, -7, 100000};
  const std::vector<int32_t> before = x;
  rope_rotate_head(x, 0, view_of(t));
  EXPECT_EQ(x, before);
}

TEST(Rope, HandCasesOfTheRounding) {
  // One frequency, C = 8192 (½), S = 14189 (≈ √3/2): y0 = rshr(x0·C − x1·S, 14), y1 = rshr(x1·C + x0·S, 14).
  const std::vector<int16_t> cos = {8192}, sin = {14189};
  const RopeTableView v{cos, sin, 1, 1, 14};
  std::vector<int32_t> x = {3, 0};  // y0 = 1.5 → 2 (half up); y1 = 3·14189/16384 = 2.598 → 3
  rope_rotate_head(x, 0, v);
  EXPECT_EQ(x, (std::vector<int32_t>{2, 3}));
  x = {-3, 0};  // y0 = −1.5 → −1 (half up); y1 = −2.598 → −3
  rope_rotate_head(x, 0, v);
  EXPECT_EQ(x, (std::vector<int32_t>{-1, -3}));
  x = {0, 1000};  // y0 = −1000·14189/16384 = −866.03 → −866; y1 = 500
  rope_rotate_head(x, 0, v);
  EXPECT_EQ(x, (std::vector<int32_t>{-866, 500}));
}

TEST(Rope, RotationTracksFloat64) {
  std::mt19937_64 rng(41);
  const int head_dim = 64, heads = 3;
  const std::vector<double> inv_freq = rope_default_inv_freq(head_dim, 10000.0);
  const RopeTables t = build_rope_tables(inv_freq, 512);
  for (int trial = 0; trial < 50; ++trial) {
    const int p = static_cast<int>(rng() % 512);
    std::vector<int32_t> row(head_dim * heads);
    for (auto& v : row) v = static_cast<int32_t>(rng() % 65535) - 32767;  // int16-range codes
    const std::vector<int32_t> x = row;
    rope_rotate_row(row, head_dim, p, view_of(t));
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < head_dim / 2; ++i) {
        const double lo = x[h * head_dim + i], hi = x[h * head_dim + i + head_dim / 2];
        const double c = std::cos(p * inv_freq[i]), s = std::sin(p * inv_freq[i]);
        // Table error ≤ 2^−15 on each factor plus the final rounding (½).
        const double bound = (std::fabs(lo) + std::fabs(hi)) * std::ldexp(1.0, -15) + 0.5 + 1e-9;
        EXPECT_LE(std::fabs(row[h * head_dim + i] - (lo * c - hi * s)), bound);
        EXPECT_LE(std::fabs(row[h * head_dim + i + head_dim / 2] - (hi * c + lo * s)), bound);
      }
    }
  }
}

TEST(Rope, RejectsBadArguments) {
  const RopeTables t = build_rope_tables(rope_default_inv_freq(8, 10000.0), 4);
  std::vector<int32_t> x(8), odd(7);
  EXPECT_THROW(rope_rotate_head(x, 4, view_of(t)), Error);
  EXPECT_THROW(rope_rotate_head(x, -1, view_of(t)), Error);
  EXPECT_THROW(rope_rotate_row(odd, 8, 0, view_of(t)), Error);
  QuantizedModel model;
  model.shape.max_positions = 4;
  model.shape.head_dim = 8;
  EXPECT_THROW(rope_table_view(model), Error);  // tables missing
  model.rope_cos = t.cos;
  model.rope_sin = t.sin;
  EXPECT_EQ(rope_table_view(model).half_dim, 4);
}

}  // namespace
}  // namespace illm
