// DI-MatMul (docs/method.md §3.2–3.6, §9.1): bit-exact against a naive int64 triple loop, accumulator choice and
// worst-case overflow shapes, error vs float64 matmul of the dequantized inputs; residual add and embedding.
#include "kernels/reference/di_matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "kernels/reference/embedding.h"
#include "kernels/reference/residual.h"
#include "kernels/requant.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

long double dyadic_value(Dyadic d) { return std::ldexp(static_cast<long double>(d.m), -d.k); }

QuantizedActivation random_activation(int rows, int cols, int bits, std::mt19937_64& rng) {
  QuantizedActivation x;
  x.rows = rows;
  x.cols = cols;
  x.bits = bits;
  const int q = (1 << bits) - 1;
  x.codes.resize(static_cast<size_t>(rows) * cols);
  for (auto& c : x.codes) c = static_cast<uint16_t>(rng() % (q + 1));
  for (int r = 0; r < rows; ++r) {
    x.zero_points.push_back(static_cast<int32_t>(rng() % (q + 1)));
    x.scales.push_back(Dyadic{32768 + static_cast<int64_t>(rng() % 32768), 20 + static_cast<int32_t>(rng() % 8)});
  }
  return x;
}

QuantizedLinear random_linear(int out, int in, int bits, int mantissa_bits, std::mt19937_64& rng) {
  QuantizedLinear w;
  w.out_features = out;
  w.in_features = in;
  w.bits = bits;
  const int q = (1 << bits) - 1;
  std::vector<uint8_t> codes(static_cast<size_t>(out) * in);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (q + 1));
  w.codes = pack_weight_codes(bits, out, in, codes);  // storage layout: 4-bit codes two per byte
  const int64_t m_lo = int64_t{1} << (mantissa_bits - 1);
  for (int r = 0; r < out; ++r) {
    w.zero_points.push_back(static_cast<int32_t>(rng() % (q + 1)));
    // Exponents spread over 20 values, so the §9.1 spread cap (24 − b_m) is exercised.
    w.scales.push_back(Dyadic{m_lo + static_cast<int64_t>(rng() % m_lo), 10 + static_cast<int32_t>(rng() % 20)});
  }
  return w;
}

// The naive reference: int64 triple loop, then alignment written out from §9.1.
std::vector<int64_t> naive_aligned(const QuantizedActivation& x, const QuantizedLinear& w, int mantissa_bits,
                                   int32_t& k2_out) {
  int32_t k_min = w.scales[0].k, k_max = w.scales[0].k;
  for (const auto& s : w.scales) k_min = std::min(k_min, s.k), k_max = std::max(k_max, s.k);
  const int32_t k2 = std::min(k_max, k_min + 24 - mantissa_bits);
  k2_out = k2;
  std::vector<int64_t> out(static_cast<size_t>(x.rows) * w.out_features);
  for (int t = 0; t < x.rows; ++t)
    for (int j = 0; j < w.out_features; ++j) {
      int64_t p = 0;
      for (int k = 0; k < x.cols; ++k)
        p += (int64_t{x.at(t, k)} - x.zero_points[t]) *
             (int64_t{weight_code(w, j, k)} - w.zero_points[j]);
      const int shift = k2 - w.scales[j].k;
      // μ_j = m·2^shift, or m / 2^−shift rounded half up: floor(m / 2^s + 1/2).
      const int64_t mu = shift >= 0 ? w.scales[j].m * (int64_t{1} << shift)
                                    : (w.scales[j].m + (int64_t{1} << (-shift - 1))) >> -shift;
      out[static_cast<size_t>(t) * w.out_features + j] = p * mu;
    }
  return out;
}

TEST(DiMatMul, AccumulatorKindFollowsTheBound) {
  EXPECT_EQ(accumulator_kind(16384, 8, 8), AccumulatorKind::kInt32);
  EXPECT_EQ(accumulator_kind(28672, 8, 8), AccumulatorKind::kInt32);
  EXPECT_EQ(accumulator_kind(33025, 8, 8), AccumulatorKind::kInt32);  // 33025·255² = 2147450625 ≤ 2^31 − 1
  EXPECT_EQ(accumulator_kind(33026, 8, 8), AccumulatorKind::kInt64);
  EXPECT_EQ(accumulator_kind(40000, 8, 8), AccumulatorKind::kInt64);
  EXPECT_EQ(accumulator_kind(16384, 4, 4), AccumulatorKind::kInt32);
  EXPECT_EQ(accumulator_kind(9544371, 4, 4), AccumulatorKind::kInt32);
  EXPECT_EQ(accumulator_kind(9544372, 4, 4), AccumulatorKind::kInt64);
}

TEST(DiMatMul, EqualsNaiveInt64LoopOnRandomShapes) {
  int cases = 0;
  for (uint64_t seed : {1u, 2u}) {
    std::mt19937_64 rng(seed);
    for (int rows : {1, 5})
      for (int inner : {1, 172, 64, 513})
        for (int out : {1, 172, 64})
          for (auto [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 8}, std::pair{8, 4}}) {
            const int bm = (cases % 2) ? 16 : 8;
            const QuantizedActivation x = random_activation(rows, inner, a_bits, rng);
            const QuantizedLinear w = random_linear(out, inner, w_bits, bm, rng);
            int32_t k2 = 0;
            const std::vector<int64_t> expected = naive_aligned(x, w, bm, k2);
            const AlignedAccumulator acc = di_matmul_accumulate(x, w, bm);
            ASSERT_EQ(acc.values, expected) << rows << "x" << inner << "x" << out;
            for (int t = 0; t < rows; ++t) ASSERT_EQ(acc.scales[t], (Dyadic{x.scales[t].m, x.scales[t].k + k2}));
            const int out_bits = (cases % 3 == 0) ? 4 : (cases % 3 == 1 ? 8 : 16);
            const QuantizedActivation y = di_matmul(x, w, out_bits, bm);
            for (int t = 0; t < rows; ++t) {
              std::vector<uint16_t> codes(out);
              const DiRequantResult r =
                  di_requant(std::span<const int64_t>(expected.data() + static_cast<size_t>(t) * out, out),
                             x.scales[t].m, x.scales[t].k + k2, out_bits, bm, std::span<uint16_t>(codes));
              ASSERT_EQ(y.zero_points[t], r.zero_point);
              ASSERT_EQ(y.scales[t], r.scale);
              ASSERT_TRUE(std::equal(codes.begin(), codes.end(), y.codes.begin() + static_cast<ptrdiff_t>(t) * out));
            }
            ++cases;
          }
  }
  EXPECT_EQ(cases, 2 * 2 * 4 * 3 * 3);
}

// Worst-case operands: |x − z1| = Q1 and |w − z2| = Q2 everywhere, with both signs of the product.
void check_worst_case(int inner, int bits, AccumulatorKind expected_kind) {
  const int q = (1 << bits) - 1;
  QuantizedActivation x;
  x.rows = 2;
  x.cols = inner;
  x.bits = bits;
  x.codes.assign(static_cast<size_t>(2) * inner, 0);
  std::fill(x.codes.begin(), x.codes.begin() + inner, static_cast<uint16_t>(q));  // row 0: x − 0 = +Q
  x.zero_points = {0, q};                                                        // row 1: 0 − Q = −Q
  x.scales = {Dyadic{40000, 20}, Dyadic{50000, 22}};
  QuantizedLinear w;
  w.out_features = 2;
  w.in_features = inner;
  w.bits = bits;
  w.codes = pack_weight_codes(bits, 2, inner, std::vector<uint8_t>(static_cast<size_t>(2) * inner, static_cast<uint8_t>(q)));
  w.zero_points = {0, 0};
  w.scales = {Dyadic{60000, 18}, Dyadic{60001, 18}};
  EXPECT_EQ(accumulator_kind(inner, bits, bits), expected_kind);
  const AlignedAccumulator acc = di_matmul_accumulate(x, w, 16);
  int32_t k2 = 0;
  const std::vector<int64_t> expected = naive_aligned(x, w, 16, k2);
  EXPECT_EQ(acc.values, expected);
  const int64_t p_max = int64_t{inner} * q * q;
  EXPECT_EQ(acc.values[0], p_max * 60000);
  EXPECT_EQ(acc.values[3], -p_max * 60001);
  const QuantizedActivation y = di_matmul(x, w, 8, 16);
  EXPECT_EQ(y.codes[0], 255);  // row 0 all positive: codes at the top, z = 0
  EXPECT_EQ(y.zero_points[0], 0);
  EXPECT_EQ(y.codes[3], 0);    // row 1 all negative: codes at the bottom, z = 255
  EXPECT_EQ(y.zero_points[1], 255);
}

TEST(DiMatMul, WorstCaseK16384W8A8IsInt32AndExact) { check_worst_case(16384, 8, AccumulatorKind::kInt32); }
TEST(DiMatMul, WorstCaseK16384W4A4IsInt32AndExact) { check_worst_case(16384, 4, AccumulatorKind::kInt32); }
TEST(DiMatMul, WorstCaseK40000W8A8IsInt64AndExact) {
  ASSERT_GT(int64_t{40000} * 255 * 255, int64_t{2147483647});  // int32 would overflow here
  check_worst_case(40000, 8, AccumulatorKind::kInt64);
}

TEST(DiMatMul, RejectsBadInputs) {
  std::mt19937_64 rng(5);
  QuantizedActivation x = random_activation(2, 8, 4, rng);
  QuantizedLinear w = random_linear(3, 8, 4, 16, rng);
  QuantizedLinear narrow = random_linear(3, 7, 4, 16, rng);
  EXPECT_THROW(di_matmul_accumulate(x, narrow, 16), Error);  // inner sizes differ
  QuantizedActivation bad = x;
  bad.codes[3] = 16;  // exceeds a 4-bit code
  EXPECT_THROW(di_matmul_accumulate(bad, w, 16), Error);
  QuantizedLinear wide_mantissa = w;
  wide_mantissa.scales[0].m = int64_t{1} << 24;
  EXPECT_THROW(di_matmul_accumulate(x, wide_mantissa, 16), Error);
}

// Error of the requantized output vs a float64 matmul of the dequantized inputs, in % of the row max |Y|.
TEST(DiMatMul, ErrorVersusFloatMatmulOfDequantizedInputs) {
  std::printf("| a/w bits | out bits | b_m | K | mean abs err (%% of row max) | max abs err (%% of row max) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (auto [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 8}})
    for (int out_bits : {4, 8, 16})
      for (int bm : {8, 16}) {
        std::mt19937_64 rng(100 + out_bits + bm);
        const int rows = 8, inner = 513, out = 172;
        const QuantizedActivation x = random_activation(rows, inner, a_bits, rng);
        const QuantizedLinear w = random_linear(out, inner, w_bits, bm, rng);
        const QuantizedActivation y = di_matmul(x, w, out_bits, bm);
        long double sum_err = 0, max_err = 0;
        for (int t = 0; t < rows; ++t) {
          std::vector<long double> ideal(out);
          long double row_max = 0;
          for (int j = 0; j < out; ++j) {
            long double s = 0;
            for (int k = 0; k < inner; ++k)
              s += dyadic_value(x.scales[t]) * (x.at(t, k) - x.zero_points[t]) * dyadic_value(w.scales[j]) *
                   (weight_code(w, j, k) - w.zero_points[j]);
            ideal[j] = s;
            row_max = std::max(row_max, std::fabs(s));
          }
          for (int j = 0; j < out; ++j) {
            const long double got = dyadic_value(y.scales[t]) * (y.at(t, j) - y.zero_points[t]);
            const long double err = std::fabs(got - ideal[j]) / row_max;
            sum_err += err;
            max_err = std::max(max_err, err);
          }
        }
        const long double mean = sum_err / (rows * out);
        std::printf("| A%dW%d | %d | %d | %d | %.5Lf | %.5Lf |\n", a_bits, w_bits, out_bits, bm, inner, 100 * mean,
                    100 * max_err);
        // Bound: half an output step (row range / (2^n_o − 1) ≤ 2·row max) plus the b_m-bit alignment of μ_j.
        EXPECT_LE(max_err, 1.0L / ((1 << out_bits) - 1) * 1.02L + std::ldexp(1.0L, -(24 - 8)) * 4);
      }
}

TEST(ResidualAdd, MatchesFloatSumWithinHalfLsb) {
  std::mt19937_64 rng(9);
  const int rows = 4, cols = 172;
  ResidualStream h;
  h.rows = rows;
  h.cols = cols;
  h.codes.resize(static_cast<size_t>(rows) * cols);
  for (auto& c : h.codes) c = static_cast<int16_t>(static_cast<int>(rng() % 65535) - 32767);
  for (int t = 0; t < rows; ++t) h.scales.push_back(Dyadic{40000 + static_cast<int64_t>(rng() % 20000), 20 + t});
  AlignedAccumulator d;
  d.rows = rows;
  d.cols = cols;
  for (int i = 0; i < rows * cols; ++i) d.values.push_back(static_cast<int64_t>(rng() >> 12) - (int64_t{1} << 51));
  for (int t = 0; t < rows; ++t) d.scales.push_back(Dyadic{50000, 60 + 3 * t});
  const ResidualStream out = residual_add(h, d, 16);
  for (int t = 0; t < rows; ++t) {
    const long double step = dyadic_value(out.scales[t]);
    for (int c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(t) * cols + c;
      const long double ideal = dyadic_value(h.scales[t]) * h.codes[i] + dyadic_value(d.scales[t]) * d.values[i];
      ASSERT_LE(std::fabs(step * out.codes[i] - ideal) / step, 0.51L) << t << "," << c;
      ASSERT_LE(std::abs(int{out.codes[i]}), 32767);
    }
  }
  // An all-zero delta leaves the residual's real values (re-expressed in a fresh 16-bit scale).
  AlignedAccumulator zero = d;
  std::fill(zero.values.begin(), zero.values.end(), 0);
  const ResidualStream same = residual_add(h, zero, 16);
  for (int c = 0; c < cols; ++c)
    EXPECT_LE(std::fabs(dyadic_value(same.scales[0]) * same.codes[c] - dyadic_value(h.scales[0]) * h.codes[c]) /
                  dyadic_value(same.scales[0]),
              0.51L);
}

TEST(Embedding, LookupCopiesRowsAndRejectsBadIds) {
  const std::vector<int16_t> table = {1, 2, 3, -4, -5, -6, 7, 8, 9};
  const std::vector<Dyadic> scales = {Dyadic{1, 0}, Dyadic{3, 4}, Dyadic{5, 6}};
  const std::vector<int32_t> ids = {2, 0, 2};
  const ResidualStream r = embedding_lookup(table, scales, 3, 16, ids);
  EXPECT_EQ(r.codes, (std::vector<int16_t>{7, 8, 9, 1, 2, 3, 7, 8, 9}));
  EXPECT_EQ(r.scales, (std::vector<Dyadic>{Dyadic{5, 6}, Dyadic{1, 0}, Dyadic{5, 6}}));
  const std::vector<int32_t> bad = {3};
  EXPECT_THROW(embedding_lookup(table, scales, 3, 16, bad), Error);
}

}  // namespace
}  // namespace illm
