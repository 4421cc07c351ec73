// Per-group DI-MatMul, the reference (docs/integer-semantics.md "## Per-group DI-MatMul"): a hand-derived 2×8 case
// with G = 4, G = in against the per-row operator bit for bit, random shapes against an independent int64 loop
// written out here from the spec, and the refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "kernels/prepared_linear.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

using Rng = std::mt19937_64;

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

QuantizedActivation activation(int32_t rows, int32_t cols, int32_t bits, std::vector<uint16_t> codes,
                               std::vector<int32_t> zero_points, std::vector<Dyadic> scales) {
  QuantizedActivation x;
  x.rows = rows;
  x.cols = cols;
  x.bits = bits;
  x.codes = std::move(codes);
  x.zero_points = std::move(zero_points);
  x.scales = std::move(scales);
  return x;
}

QuantizedActivation random_activation(Rng& rng, int32_t rows, int32_t cols, int32_t bits) {
  const int64_t q = (int64_t{1} << bits) - 1;
  std::vector<uint16_t> codes;
  std::vector<int32_t> zero_points;
  std::vector<Dyadic> scales;
  for (int32_t t = 0; t < rows; ++t) {
    const bool extreme = uniform(rng, 0, 3) == 0;  // all codes at the maximum, zero point 0: the largest |P|
    for (int32_t c = 0; c < cols; ++c) codes.push_back(static_cast<uint16_t>(extreme ? q : uniform(rng, 0, q)));
    zero_points.push_back(extreme ? 0 : static_cast<int32_t>(uniform(rng, 0, q)));
    scales.push_back(Dyadic{uniform(rng, 1 << 15, (1 << 16) - 1), static_cast<int32_t>(uniform(rng, 10, 30))});
  }
  return activation(rows, cols, bits, std::move(codes), std::move(zero_points), std::move(scales));
}

// Random codes; zero points and scales per (row, group), exponents spread over 20 values (the §9.1 cap and the
// rshr branch of the alignment).
QuantizedLinear random_grouped_linear(Rng& rng, int32_t out, int32_t in, int32_t bits, int32_t group, int b_m) {
  const int64_t q = (int64_t{1} << bits) - 1;
  std::vector<uint8_t> codes;
  for (int64_t i = 0; i < int64_t{out} * in; ++i) codes.push_back(static_cast<uint8_t>(uniform(rng, 0, q)));
  std::vector<int32_t> zero_points;
  std::vector<Dyadic> scales;
  for (int64_t i = 0; i < int64_t{out} * (in / group); ++i) {
    zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, q)));
    scales.push_back(Dyadic{uniform(rng, int64_t{1} << (b_m - 1), (int64_t{1} << b_m) - 1),
                            static_cast<int32_t>(uniform(rng, 5, 25))});
  }
  return make_quantized_linear(out, in, bits, codes, std::move(zero_points), std::move(scales), group);
}

// The spec written out independently: int64 sums per (token, row, group), K2 over all (row, group) scales, μ by
// shift or round-half-up shift, P' = Σ_g P·μ.
std::vector<int64_t> naive_grouped(const QuantizedActivation& x, const QuantizedLinear& w, int b_m, int32_t& k2) {
  const std::vector<uint8_t> codes = unpack_weight_codes(w);
  const int32_t group = w.group_size, groups = w.in_features / group;
  int32_t k_min = w.scales[0].k, k_max = w.scales[0].k;
  for (const Dyadic& d : w.scales) {
    k_min = std::min(k_min, d.k);
    k_max = std::max(k_max, d.k);
  }
  k2 = std::min(k_max, k_min + 24 - b_m);
  std::vector<int64_t> mu;
  for (const Dyadic& d : w.scales) {
    const int shift = k2 - d.k;
    mu.push_back(shift >= 0 ? d.m * (int64_t{1} << shift) : (d.m + (int64_t{1} << (-shift - 1))) >> -shift);
  }
  std::vector<int64_t> p(static_cast<size_t>(x.rows) * w.out_features, 0);
  for (int32_t t = 0; t < x.rows; ++t)
    for (int32_t r = 0; r < w.out_features; ++r)
      for (int32_t g = 0; g < groups; ++g) {
        int64_t sum = 0;
        for (int32_t c = g * group; c < (g + 1) * group; ++c)
          sum += (int64_t{x.at(t, c)} - x.zero_points[t]) *
                 (int64_t{codes[static_cast<size_t>(r) * w.in_features + c]} - w.zero_points[r * groups + g]);
        p[static_cast<size_t>(t) * w.out_features + r] += sum * mu[static_cast<size_t>(r) * groups + g];
      }
  return p;
}

// 2 weight rows × 8 columns, G = 4, one 4-bit token row; every number below derived by hand.
//   x − z1 = [1,2,3,4,5,6,7,8] − 2 = [−1,0,1,2,3,4,5,6]
//   row 0: codes [3,3,3,3 | 0,1,2,3], z = (3, 1), scales (5/2^2, 3/2^1)
//   row 1: codes [15,0,15,15 | 8,9,10,15], z = (0, 8), scales (1/2^0, 7/2^3)
//   b_m = 16: K2 = min(max k = 3, min k + 24 − 16 = 8) = 3; μ = (5·2, 3·4, 1·8, 7·1) = (10, 12, 8, 7)
//   row 0: P_g0 = 0 (all W − z = 0), P_g1 = [−1,0,1,2]·[3,4,5,6] = 14      → P' = 14·12 = 168
//   row 1: P_g0 = [15,0,15,15]·[−1,0,1,2] = 30, P_g1 = [0,1,2,7]·[3,4,5,6] = 56 → P' = 30·8 + 56·7 = 632
// Second token x = [15,15,15,15,0,0,0,0], z1 = 15 (x − z1 = [0,0,0,0,−15,−15,−15,−15]):
//   row 0: P_g1 = −15·(−1+0+1+2) = −30 → P' = −360;  row 1: P_g1 = −15·(0+1+2+7) = −150 → P' = −1050
TEST(PerGroupMatMul, HandDerivedTwoByEightGroupFour) {
  const QuantizedActivation x = activation(2, 8, 4, {1, 2, 3, 4, 5, 6, 7, 8, 15, 15, 15, 15, 0, 0, 0, 0}, {2, 15},
                                           {Dyadic{3, 4}, Dyadic{1, 0}});
  const QuantizedLinear w = make_quantized_linear(2, 8, 4, std::vector<uint8_t>{3, 3, 3, 3, 0, 1, 2, 3, 15, 0, 15, 15, 8, 9, 10, 15},
                                                  {3, 1, 0, 8}, {Dyadic{5, 2}, Dyadic{3, 1}, Dyadic{1, 0}, Dyadic{7, 3}}, 4);
  const AlignedAccumulator acc = di_matmul_accumulate(x, w, 16);
  EXPECT_EQ(acc.values, (std::vector<int64_t>{168, 632, -360, -1050}));
  EXPECT_EQ(acc.scales[0].m, 3);
  EXPECT_EQ(acc.scales[0].k, 4 + 3);
  EXPECT_EQ(acc.scales[1].k, 0 + 3);

  // The real value P'·m1/2^(k1 + K2) equals the float64 matmul of the dequantized operands exactly here (no
  // mantissa was shifted right, and every value is a short dyadic fraction).
  const double x_scale[2] = {3.0 / 16, 1.0};
  const double w_scale[4] = {5.0 / 4, 3.0 / 2, 1.0, 7.0 / 8};
  const std::vector<uint8_t> codes = unpack_weight_codes(w);
  for (int t = 0; t < 2; ++t)
    for (int r = 0; r < 2; ++r) {
      double want = 0;
      for (int c = 0; c < 8; ++c)
        want += x_scale[t] * (x.at(t, c) - x.zero_points[t]) * w_scale[r * 2 + c / 4] *
                (codes[static_cast<size_t>(r) * 8 + c] - w.zero_points[static_cast<size_t>(r) * 2 + c / 4]);
      const double got = std::ldexp(static_cast<double>(acc.values[static_cast<size_t>(t) * 2 + r]) * acc.scales[t].m,
                                    -acc.scales[t].k);
      EXPECT_EQ(got, want) << "token " << t << " row " << r;
    }
}

// G = in_features (group_size set) is today's per-row DI-MatMul bit for bit: accumulator, exponent and codes.
TEST(PerGroupMatMul, GroupEqualToInFeaturesIsThePerRowOperator) {
  Rng rng(5);
  for (const int32_t in : {1, 7, 64, 172, 513})
    for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{6, 5}})
      for (const int b_m : {8, 16}) {
        const QuantizedActivation x = random_activation(rng, 5, in, a_bits);
        QuantizedLinear per_row = random_grouped_linear(rng, 9, in, w_bits, in, b_m);
        per_row.group_size = 0;
        QuantizedLinear grouped = per_row;
        grouped.group_size = in;
        const AlignedAccumulator want = di_matmul_accumulate(x, per_row, b_m);
        const AlignedAccumulator got = di_matmul_accumulate(x, grouped, b_m);
        ASSERT_EQ(got.values, want.values) << "in " << in << " A" << a_bits << "W" << w_bits;
        for (int32_t t = 0; t < x.rows; ++t) {
          ASSERT_EQ(got.scales[t].m, want.scales[t].m);
          ASSERT_EQ(got.scales[t].k, want.scales[t].k);
        }
        const QuantizedActivation y_row = di_matmul(x, per_row, 8, b_m), y_group = di_matmul(x, grouped, 8, b_m);
        ASSERT_EQ(y_group.codes, y_row.codes);
        ASSERT_EQ(y_group.zero_points, y_row.zero_points);
        // The kernel-set entry (prepared weight) too.
        AlignedAccumulator prepared;
        linear_accumulate(x, prepare_linear(grouped, b_m), prepared);
        ASSERT_EQ(prepared.values, want.values);
      }
}

// A weight whose groups all repeat the row's zero point and scale is the per-row weight: same P' bit for bit.
TEST(PerGroupMatMul, RepeatedGroupScalesEqualThePerRowOperator) {
  Rng rng(6);
  const QuantizedActivation x = random_activation(rng, 4, 256, 4);
  QuantizedLinear per_row = random_grouped_linear(rng, 11, 256, 4, 256, 16);
  per_row.group_size = 0;
  QuantizedLinear grouped = per_row;
  grouped.group_size = 32;
  grouped.zero_points.clear();
  grouped.scales.clear();
  for (int32_t r = 0; r < 11; ++r)
    for (int g = 0; g < 8; ++g) {
      grouped.zero_points.push_back(per_row.zero_points[r]);
      grouped.scales.push_back(per_row.scales[r]);
    }
  EXPECT_EQ(di_matmul_accumulate(x, grouped, 16).values, di_matmul_accumulate(x, per_row, 16).values);
}

TEST(PerGroupMatMul, RandomShapesEqualTheSpecWrittenOut) {
  Rng rng(7);
  int cases = 0;
  for (const int32_t group : {2, 4, 32, 64, 128})
    for (const int32_t groups : {1, 3, 5})
      for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{3, 2}}) {
        const int b_m = cases % 2 == 0 ? 16 : 8;
        const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 6)), out = static_cast<int32_t>(uniform(rng, 1, 9));
        const QuantizedActivation x = random_activation(rng, rows, group * groups, a_bits);
        const QuantizedLinear w = random_grouped_linear(rng, out, group * groups, w_bits, group, b_m);
        int32_t k2 = 0;
        const std::vector<int64_t> want = naive_grouped(x, w, b_m, k2);
        const AlignedAccumulator got = di_matmul_accumulate(x, w, b_m);
        ASSERT_EQ(got.values, want) << "G " << group << " groups " << groups << " A" << a_bits << "W" << w_bits;
        for (int32_t t = 0; t < rows; ++t) ASSERT_EQ(got.scales[t].k, x.scales[t].k + k2);
        ++cases;
      }
  EXPECT_EQ(cases, 60);
}

// The largest |P'| of a group: all codes at the extremes, G = 128 at 8×8 bits (P per group = ±128·255², int32).
TEST(PerGroupMatMul, ExtremeCodesAreExact) {
  std::vector<uint16_t> x_codes(512, 255);
  const QuantizedActivation x = activation(1, 512, 8, x_codes, {0}, {Dyadic{1, 0}});
  std::vector<uint8_t> codes(2 * 512, 255);
  std::fill(codes.begin() + 512, codes.end(), 0);
  std::vector<int32_t> zero_points = {0, 0, 0, 0, 255, 255, 255, 255};
  std::vector<Dyadic> scales(8, Dyadic{(1 << 16) - 1, 0});
  const QuantizedLinear w = make_quantized_linear(2, 512, 8, codes, zero_points, scales, 128);
  const AlignedAccumulator acc = di_matmul_accumulate(x, w, 16);
  EXPECT_EQ(acc.values[0], int64_t{512} * 255 * 255 * ((1 << 16) - 1));
  EXPECT_EQ(acc.values[1], -int64_t{512} * 255 * 255 * ((1 << 16) - 1));
}

TEST(PerGroupMatMul, RefusesInconsistentGroups) {
  Rng rng(8);
  const QuantizedActivation x = random_activation(rng, 2, 96, 4);
  QuantizedLinear w = random_grouped_linear(rng, 3, 96, 4, 32, 16);
  w.group_size = 64;  // does not divide 96
  EXPECT_THROW(di_matmul_accumulate(x, w, 16), Error);
  w.group_size = 32;
  w.scales.pop_back();  // 8 scales for 9 (row, group)s
  EXPECT_THROW(di_matmul_accumulate(x, w, 16), Error);
  EXPECT_EQ(weight_group_problem(w), std::nullopt);
  w.group_size = 48;  // divides 96 but is not 32, 64, 128 or in
  EXPECT_NE(weight_group_problem(w), std::nullopt);
  w.group_size = 64;
  EXPECT_NE(weight_group_problem(w), std::nullopt);
  w.group_size = 96;
  EXPECT_EQ(weight_group_problem(w), std::nullopt);
}

}  // namespace
}  // namespace illm
