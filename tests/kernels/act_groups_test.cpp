// Per-group activations (docs/integer-semantics.md "## Per-group activations"): the DI-MatMul of per-group activation
// codes against a hand-derived case and against a float64 matmul of the dequantized operands (within the bound of
// its two roundings), the per-group DI_REQUANT against di_requant on every group span on every kernel path, the
// all-zero group rule, and the refusals (operator and model validation).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/kernel_set.h"
#include "kernels/model_validation.h"
#include "kernels/prepared_linear.h"
#include "kernels/reference/act_group_matmul.h"
#include "kernels/requant.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

using Rng = std::mt19937_64;
int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

QuantizedActivation grouped_activation(int32_t rows, int32_t cols, int32_t bits, int32_t group,
                                       std::vector<uint16_t> codes, std::vector<int32_t> zero_points,
                                       std::vector<Dyadic> scales) {
  QuantizedActivation x;
  x.rows = rows;
  x.cols = cols;
  x.bits = bits;
  x.group_size = group;
  x.codes = std::move(codes);
  x.zero_points = std::move(zero_points);
  x.scales = std::move(scales);
  return x;
}

double real(const Dyadic& d) { return std::ldexp(static_cast<double>(d.m), -d.k); }

// Worked by hand (b_m = 4, G = 2, 2 tokens, 1 weight row, weight scale (9, 3), zero point 1, codes 2 0 1 3):
// token 0: group 0 codes 3 1, z 1, scale (12, 5); group 1 codes 0 2, z 1, scale (10, 7).
//   K1 = 5, λ = (12, rshr(10, 2) = 3); P = (2·1 + 0·(−1), (−1)·0 + 1·2) = (2, 2); S = 2·12 + 2·3 = 30;
//   P' = rshr(30, 4)·9 = 2·9 = 18, row dyadic (1, 5 − 4 + 3) = (1, 4).
// token 1: group 0 all zero (codes 0, z 0, scale (1, 0)); group 1 codes 2 0, z 1, scale (8, 6).
//   K1 = 6 (group 0 left out), λ = (0, 8); P = (0, 1·0 + (−1)·2) = (0, −2); S = −16;
//   P' = rshr(−16, 4)·9 = −1·9 = −9 (half up: ⌊−8/16⌋ = −1), row dyadic (1, 6 − 4 + 3) = (1, 5).
TEST(ActGroupMatMul, HandDerivedCase) {
  const QuantizedActivation x = grouped_activation(2, 4, 2, 2, {3, 1, 0, 2, 0, 0, 2, 0}, {1, 1, 0, 1},
                                                   {{12, 5}, {10, 7}, {1, 0}, {8, 6}});
  const std::vector<uint8_t> codes = {2, 0, 1, 3};
  const QuantizedLinear w = make_quantized_linear(1, 4, 2, codes, {1}, {{9, 3}});
  const PreparedLinear prepared = prepare_linear(w, 4);
  AlignedAccumulator out;
  linear_act_groups_accumulate(x, prepared, out);
  ASSERT_EQ(out.rows, 2);
  ASSERT_EQ(out.cols, 1);
  EXPECT_EQ(out.values, (std::vector<int64_t>{18, -9}));
  EXPECT_EQ(out.scales[0], (Dyadic{1, 4}));
  EXPECT_EQ(out.scales[1], (Dyadic{1, 5}));
}

// A short last group ("Groups of a width"), worked by hand: b_m = 4, G = 2, 3 columns (groups {0, 1} and {2}),
// 1 token, codes 3 1 | 0, zero points 1 | 1, scales (12, 5) | (10, 7); 1 weight row, codes 2 0 3, zero point 1,
// scale (9, 3):
//   K1 = 5, λ = (12, rshr(10, 2) = 3); P = (2·1 + 0·(−1), (−1)·2) = (2, −2); S = 2·12 − 2·3 = 18;
//   P' = rshr(18, 4)·9 = 1·9 = 9 (18/16 rounds to 1), row dyadic (1, 5 − 4 + 3) = (1, 4).
TEST(ActGroupMatMul, HandDerivedCaseWithAShortLastGroup) {
  const QuantizedActivation x = grouped_activation(1, 3, 2, 2, {3, 1, 0}, {1, 1}, {{12, 5}, {10, 7}});
  const std::vector<uint8_t> codes = {2, 0, 3};
  const QuantizedLinear w = make_quantized_linear(1, 3, 2, codes, {1}, {{9, 3}});
  AlignedAccumulator out;
  linear_act_groups_accumulate(x, prepare_linear(w, 4), out);
  EXPECT_EQ(out.values, (std::vector<int64_t>{9}));
  EXPECT_EQ(out.scales[0], (Dyadic{1, 4}));
}

// A short last group is the operator on whole groups with the missing columns padded by centered zeros (activation
// code = the group's zero point, weight code = the row's zero point): they add nothing to P, so every output and
// dyadic is the same. Random shapes, G 8 … 128, widths from below G to several groups.
TEST(ActGroupMatMul, AShortLastGroupEqualsTheOperatorOnZeroPaddedWholeGroups) {
  Rng rng(11);
  for (const auto& [group, k] : {std::pair{8, 172}, std::pair{8, 5}, std::pair{16, 172}, std::pair{32, 70},
                                 std::pair{128, 64}, std::pair{128, 200}})
    for (const int32_t bits : {4, 8}) {
      const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 5)), n = static_cast<int32_t>(uniform(rng, 1, 7));
      const int32_t groups = (k + group - 1) / group, padded = groups * group;
      const int64_t q = (int64_t{1} << bits) - 1;
      std::vector<uint16_t> x_codes, x_padded;
      std::vector<int32_t> zero_points;
      std::vector<Dyadic> scales;
      for (int32_t t = 0; t < rows; ++t) {
        for (int32_t g = 0; g < groups; ++g) {
          zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, q)));
          scales.push_back(Dyadic{uniform(rng, 1 << 15, (1 << 16) - 1), static_cast<int32_t>(uniform(rng, 10, 30))});
        }
        for (int32_t c = 0; c < padded; ++c) {
          const uint16_t code = static_cast<uint16_t>(uniform(rng, 0, q));
          if (c < k) x_codes.push_back(code);
          x_padded.push_back(c < k ? code : static_cast<uint16_t>(zero_points[t * groups + c / group]));
        }
      }
      std::vector<uint8_t> w_codes, w_padded;
      std::vector<int32_t> w_zero_points;
      std::vector<Dyadic> w_scales;
      for (int32_t j = 0; j < n; ++j) {
        w_zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, q)));
        w_scales.push_back(Dyadic{uniform(rng, 1 << 15, (1 << 16) - 1), static_cast<int32_t>(uniform(rng, 20, 30))});
        for (int32_t c = 0; c < padded; ++c) {
          const uint8_t code = static_cast<uint8_t>(uniform(rng, 0, q));
          if (c < k) w_codes.push_back(code);
          w_padded.push_back(c < k ? code : static_cast<uint8_t>(w_zero_points.back()));
        }
      }
      const QuantizedActivation x = grouped_activation(rows, k, bits, group, x_codes, zero_points, scales);
      const QuantizedActivation xp = grouped_activation(rows, padded, bits, group, x_padded, zero_points, scales);
      const QuantizedLinear w = make_quantized_linear(n, k, bits, w_codes, w_zero_points, w_scales);
      const QuantizedLinear wp = make_quantized_linear(n, padded, bits, w_padded, w_zero_points, w_scales);
      AlignedAccumulator got, want;
      linear_act_groups_accumulate(x, prepare_linear(w, 16), got);
      linear_act_groups_accumulate(xp, prepare_linear(wp, 16), want);
      EXPECT_EQ(got.values, want.values) << "G " << group << " k " << k << " bits " << bits;
      EXPECT_EQ(got.scales, want.scales) << "G " << group << " k " << k << " bits " << bits;
    }
}

// Per-group weights too ("## Per-group activations with per-group weights"), worked by hand: b_m = 2, A = 2, G = 4,
// 1 token, 1 weight row of 8 codes 3 0 1 3 | 1 2 0 0, zero points (1 | 2), scales (3, 10) and (2, 10) (K2 = 10,
// μ = 3, 2). Activation codes 3 1 | 0 2 | 2 1 | 2 0, zero points 1 0 1 2, scales (2, 4) (3, 3) (2, 4) (2, 4):
//   K1 = 3, λ = (rshr(2, 1), 3, rshr(2, 1), rshr(2, 1)) = (1, 3, 1, 1);
//   P = (2·2 + 0·(−1), 0·0 + 2·2, 1·(−1) + 0·0, 0·(−2) + (−2)·(−2)) = (4, 4, −1, 4);
//   T = (4·1 + 4·3, −1·1 + 4·1) = (16, 3); P' = rshr(16, 2)·3 + rshr(3, 2)·2 = 4·3 + 1·2 = 14, row dyadic
//   (1, 3 − 2 + 10) = (1, 11). The real product is 108/2^14 = 13.5/2^11 (the second group's 0.75 rounds to 1).
TEST(ActGroupMatMul, HandDerivedCaseWithPerGroupWeights) {
  const QuantizedActivation x = grouped_activation(1, 8, 4, 2, {3, 1, 0, 2, 2, 1, 2, 0}, {1, 0, 1, 2},
                                                   {{2, 4}, {3, 3}, {2, 4}, {2, 4}});
  const std::vector<uint8_t> codes = {3, 0, 1, 3, 1, 2, 0, 0};
  const QuantizedLinear w = make_quantized_linear(1, 8, 4, codes, {1, 2}, {{3, 10}, {2, 10}}, 4);
  const PreparedLinear prepared = prepare_linear(w, 2);
  AlignedAccumulator out;
  linear_act_groups_accumulate(x, prepared, out);
  ASSERT_EQ(out.rows, 1);
  ASSERT_EQ(out.cols, 1);
  EXPECT_EQ(out.values, (std::vector<int64_t>{14}));
  EXPECT_EQ(out.scales[0], (Dyadic{1, 11}));
}

// One weight group per row (G = in) is the per-row-weight operator term for term.
TEST(ActGroupMatMul, OneWeightGroupIsThePerRowWeightOperator) {
  Rng rng(7);
  const int32_t in = 64, group = 16, rows = 3, out = 5;
  std::vector<uint16_t> codes;
  std::vector<int32_t> zps;
  std::vector<Dyadic> scales;
  for (int32_t i = 0; i < rows * in; ++i) codes.push_back(static_cast<uint16_t>(uniform(rng, 0, 15)));
  for (int32_t i = 0; i < rows * (in / group); ++i) {
    zps.push_back(static_cast<int32_t>(uniform(rng, 0, 15)));
    scales.push_back(Dyadic{uniform(rng, 128, 255), static_cast<int32_t>(uniform(rng, 8, 20))});
  }
  const QuantizedActivation x = grouped_activation(rows, in, 4, group, codes, zps, scales);
  std::vector<uint8_t> w_codes;
  for (int32_t i = 0; i < out * in; ++i) w_codes.push_back(static_cast<uint8_t>(uniform(rng, 0, 15)));
  std::vector<int32_t> w_zps;
  std::vector<Dyadic> w_scales;
  for (int32_t j = 0; j < out; ++j) {
    w_zps.push_back(static_cast<int32_t>(uniform(rng, 0, 15)));
    w_scales.push_back(Dyadic{uniform(rng, 128, 255), static_cast<int32_t>(uniform(rng, 10, 14))});
  }
  const QuantizedLinear per_row = make_quantized_linear(out, in, 4, w_codes, w_zps, w_scales);
  const QuantizedLinear one_group = make_quantized_linear(out, in, 4, w_codes, w_zps, w_scales, in);
  AlignedAccumulator want, got;
  linear_act_groups_accumulate(x, prepare_linear(per_row, 8), want);
  linear_act_groups_accumulate(x, prepare_linear(one_group, 8), got);
  EXPECT_EQ(got.values, want.values);
  EXPECT_EQ(got.scales, want.scales);
}

TEST(ActGroupMatMul, AlignmentLeavesAllZeroGroupsOut) {
  std::vector<int64_t> lambdas(4);
  EXPECT_EQ(align_activation_groups(std::vector<Dyadic>{{1, 0}, {40000, 20}, {1, 0}, {50000, 23}}, lambdas), 20);
  EXPECT_EQ(lambdas, (std::vector<int64_t>{0, 40000, 0, 6250}));  // rshr(50000, 3) = 6250
  EXPECT_EQ(align_activation_groups(std::vector<Dyadic>{{1, 0}, {1, 0}}, lambdas), 0);
  EXPECT_EQ(lambdas[0], 0);
  EXPECT_EQ(lambdas[1], 0);
  // A group 70 exponents finer than the coarsest rounds to λ = 0 (rshr by >= 64).
  EXPECT_EQ(align_activation_groups(std::vector<Dyadic>{{32768, 2}, {65535, 72}}, lambdas), 2);
  EXPECT_EQ(lambdas[0], 32768);
  EXPECT_EQ(lambdas[1], 0);
}

// Random shapes against the float64 product of the dequantized operands. Weight rows share one exponent, so their
// aligned mantissas are their own and the weights dequantize exactly; the error is then bounded by the two roundings
// of the operator: |err| <= (μ_j/2^K2)·(2^(b_m−1) + ½·Σ_g |P_g|)/2^K1 (docs/integer-semantics.md).
TEST(ActGroupMatMul, RandomShapesMatchTheFloat64ProductWithinTheRoundingBound) {
  Rng rng(20261202);
  int cases = 0;
  for (const int32_t group : {16, 32, 64, 128}) {
    for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{6, 6}}) {
      for (const int b_m : {8, 16}) {
        const int32_t groups = static_cast<int32_t>(uniform(rng, 1, 4)), in = group * groups;
        const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 5)), out = static_cast<int32_t>(uniform(rng, 1, 6));
        const int64_t qa = (int64_t{1} << a_bits) - 1, qw = (int64_t{1} << w_bits) - 1;
        std::vector<uint16_t> codes;
        std::vector<int32_t> zps;
        std::vector<Dyadic> scales;
        for (int32_t t = 0; t < rows; ++t)
          for (int32_t g = 0; g < groups; ++g) {
            const bool zero = uniform(rng, 0, 5) == 0;  // an all-zero group, as DI_REQUANT emits it
            for (int32_t c = 0; c < group; ++c) codes.push_back(zero ? 0 : static_cast<uint16_t>(uniform(rng, 0, qa)));
            zps.push_back(zero ? 0 : static_cast<int32_t>(uniform(rng, 0, qa)));
            scales.push_back(zero ? Dyadic{1, 0}
                                  : Dyadic{uniform(rng, int64_t{1} << (b_m - 1), (int64_t{1} << b_m) - 1),
                                           static_cast<int32_t>(uniform(rng, 8, 30))});
          }
        const QuantizedActivation x = grouped_activation(rows, in, a_bits, group, codes, zps, scales);
        std::vector<uint8_t> w_codes;
        for (int64_t i = 0; i < int64_t{out} * in; ++i) w_codes.push_back(static_cast<uint8_t>(uniform(rng, 0, qw)));
        std::vector<int32_t> w_zps;
        std::vector<Dyadic> w_scales;
        const int32_t w_k = static_cast<int32_t>(uniform(rng, 10, 20));
        for (int32_t j = 0; j < out; ++j) {
          w_zps.push_back(static_cast<int32_t>(uniform(rng, 0, qw)));
          w_scales.push_back(Dyadic{uniform(rng, int64_t{1} << (b_m - 1), (int64_t{1} << b_m) - 1), w_k});
        }
        const QuantizedLinear w = make_quantized_linear(out, in, w_bits, w_codes, w_zps, w_scales);
        const PreparedLinear prepared = prepare_linear(w, b_m);
        AlignedAccumulator acc;
        linear_act_groups_accumulate(x, prepared, acc);
        for (int32_t t = 0; t < rows; ++t) {
          std::vector<int64_t> lambdas(groups);
          const int32_t k1 = align_activation_groups(std::span<const Dyadic>(scales.data() + t * groups, groups), lambdas);
          for (int32_t j = 0; j < out; ++j) {
            double want = 0, abs_p = 0;
            for (int32_t g = 0; g < groups; ++g) {
              const size_t tg = static_cast<size_t>(t) * groups + g;
              double p = 0;
              for (int32_t c = g * group; c < (g + 1) * group; ++c)
                p += (double(codes[static_cast<size_t>(t) * in + c]) - zps[tg]) *
                     (double(w_codes[static_cast<size_t>(j) * in + c]) - w_zps[j]);
              want += p * real(scales[tg]) * real(w_scales[j]);
              abs_p += std::fabs(p);
            }
            const double got = std::ldexp(static_cast<double>(acc.values[static_cast<size_t>(t) * out + j]),
                                          -acc.scales[t].k) * static_cast<double>(acc.scales[t].m);
            const double bound = real(w_scales[j]) * std::ldexp(std::ldexp(1.0, b_m - 1) + 0.5 * abs_p, -k1);
            EXPECT_LE(std::fabs(got - want), bound * (1 + 1e-12) + 1e-300)
                << "G " << group << " A" << a_bits << "W" << w_bits << " b_m " << b_m << " t " << t << " j " << j;
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 100);
}

TEST(ActGroupMatMul, RefusesMismatchedShapesAndWeightGroupsSmallerThanTheActivationGroups) {
  const QuantizedActivation x = grouped_activation(1, 4, 4, 2, {1, 2, 3, 4}, {0, 0}, {{8, 4}, {8, 4}});
  const std::vector<uint8_t> codes(8, 1);
  AlignedAccumulator out;
  const QuantizedActivation x4 = grouped_activation(1, 4, 4, 4, {1, 2, 3, 4}, {0}, {{8, 4}});
  const QuantizedLinear per_group = make_quantized_linear(2, 4, 4, codes, {0, 0, 0, 0}, {{8, 4}, {8, 4}, {8, 4}, {8, 4}}, 2);
  EXPECT_THROW(linear_act_groups_accumulate(x4, prepare_linear(per_group, 8), out), Error);  // G 2 < A 4
  const QuantizedLinear wide = make_quantized_linear(1, 8, 4, codes, {0}, {{8, 4}});
  EXPECT_THROW(linear_act_groups_accumulate(x, prepare_linear(wide, 8), out), Error);
  QuantizedActivation bad = x;
  bad.group_size = 0;
  const QuantizedLinear w = make_quantized_linear(2, 4, 4, codes, {0, 0}, {{8, 4}, {8, 4}});
  EXPECT_THROW(linear_act_groups_accumulate(bad, prepare_linear(w, 8), out), Error);
  bad.group_size = 3;  // two groups, {0, 1, 2} and {3}: one scale short
  bad.zero_points = {0};
  bad.scales = {{8, 4}};
  EXPECT_THROW(linear_act_groups_accumulate(bad, prepare_linear(w, 8), out), Error);
  bad = x;
  bad.scales.pop_back();
  EXPECT_THROW(linear_act_groups_accumulate(bad, prepare_linear(w, 8), out), Error);
}

// requantize_groups on every path's `requantize` = di_requant of each group span with the row's dyadic and the
// clip, written out here group by group.
TEST(RequantizeGroups, EveryGroupIsItsOwnDiRequantOnEveryPath) {
  Rng rng(7);
  for (const KernelPath path : all_kernel_paths()) {
    if (!cpu_supports(path)) continue;
    const KernelSet& k = kernels_for(path);
    for (const auto& [group, tail] : {std::pair{8, 0}, std::pair{16, 0}, std::pair{32, 0}, std::pair{64, 0},
                                      std::pair{8, 4}, std::pair{16, 12}, std::pair{32, 1}, std::pair{64, 63}}) {
      for (const RequantClip clip : {RequantClip{}, RequantClip{13, 4}}) {
        // three whole groups, then a short one of `tail` columns (none when tail is 0)
        const int32_t rows = 3, cols = group * 3 + tail, bits = 4, b_m = 16, groups = tail > 0 ? 4 : 3;
        AlignedAccumulator acc;
        acc.rows = rows;
        acc.cols = cols;
        for (int32_t t = 0; t < rows; ++t) {
          const int64_t range = int64_t{1} << uniform(rng, 3, 15);
          for (int32_t c = 0; c < cols; ++c) {
            // group 1 of row 2 all zero, group 0 of row 1 ten times smaller than the rest
            const bool zero = t == 2 && c / group == 1;
            const int64_t r = (t == 1 && c < group) ? range / 10 + 1 : range;
            acc.values.push_back(zero ? 0 : uniform(rng, -r, r));
          }
          acc.scales.push_back(Dyadic{uniform(rng, 1 << 15, (1 << 16) - 1), static_cast<int32_t>(uniform(rng, 10, 30))});
        }
        const AlignedAccumulator before = acc;
        QuantizedActivation got;
        requantize_groups(k.requantize, acc, group, bits, b_m, got, clip);
        EXPECT_EQ(acc.values, before.values);
        EXPECT_EQ(acc.rows, rows);
        EXPECT_EQ(acc.cols, cols);
        ASSERT_EQ(acc.scales.size(), before.scales.size());
        EXPECT_EQ(got.rows, rows);
        EXPECT_EQ(got.cols, cols);
        EXPECT_EQ(got.group_size, group);
        ASSERT_EQ(got.codes.size(), static_cast<size_t>(rows * cols));
        ASSERT_EQ(got.scales.size(), static_cast<size_t>(rows * groups));
        ASSERT_EQ(got.zero_points.size(), static_cast<size_t>(rows * groups));
        for (int32_t t = 0; t < rows; ++t)
          for (int32_t g = 0; g < groups; ++g) {
            const size_t offset = static_cast<size_t>(t) * cols + static_cast<size_t>(g) * group;
            const int32_t width = g < 3 ? group : tail;
            std::vector<uint16_t> want(width);
            const DiRequantResult r =
                di_requant(std::span<const int64_t>(before.values.data() + offset, width), before.scales[t].m,
                           before.scales[t].k, bits, b_m, std::span<uint16_t>(want), clip);
            const std::vector<uint16_t> codes(got.codes.begin() + offset, got.codes.begin() + offset + width);
            EXPECT_EQ(codes, want) << kernel_path_name(path) << " G " << group << " tail " << tail << " t " << t
                                   << " g " << g;
            EXPECT_EQ(got.zero_points[t * groups + g], r.zero_point);
            EXPECT_EQ(got.scales[t * groups + g], r.scale);
            if (t == 2 && g == 1) {
              EXPECT_EQ(got.scales[t * groups + g], (Dyadic{1, 0}));
            }
          }
      }
    }
  }
}

TEST(RequantizeGroups, RefusesAGroupSizeBelowOne) {
  AlignedAccumulator acc;
  acc.rows = 1;
  acc.cols = 48;
  acc.values.assign(48, 1);
  acc.scales = {Dyadic{1 << 15, 20}};
  QuantizedActivation out;
  EXPECT_THROW(requantize_groups(reference_kernels().requantize, acc, 0, 4, 16, out, {}), Error);
  EXPECT_EQ(acc.rows, 1);
  EXPECT_EQ(acc.cols, 48);
}

TEST(CenterCodes, GivesCodeMinusZeroPointWithTheRowsDyadic) {
  QuantizedActivation x;
  x.rows = 2;
  x.cols = 3;
  x.bits = 16;
  x.codes = {0, 65535, 100, 7, 7, 8};
  x.zero_points = {100, 7};
  x.scales = {{40000, 30}, {50000, 31}};
  AlignedAccumulator out;
  center_codes(x, out);
  EXPECT_EQ(out.values, (std::vector<int64_t>{-100, 65435, 0, 0, 0, 1}));
  EXPECT_EQ(out.scales, x.scales);
  x.group_size = 3;
  EXPECT_THROW(center_codes(x, out), Error);
}

}  // namespace
}  // namespace illm
