// The fast DI-MatMul (kernels/optimized/di_matmul_fast.h) must equal the reference (kernels/reference/di_matmul.h)
// bit for bit: aligned accumulators, output codes, zero points and scales, on random shapes (K, N ∈ {1, 172, 513}),
// widths, thread counts, the int64 path (K = 40000 at W8A8, 16-bit inputs) and the reference's error cases.
#include "kernels/optimized/di_matmul_fast.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "kernels/reference/di_matmul.h"

namespace illm {
namespace {

QuantizedActivation random_activation(int rows, int cols, int bits, std::mt19937_64& rng, bool extreme = false) {
  QuantizedActivation x;
  x.rows = rows;
  x.cols = cols;
  x.bits = bits;
  const int64_t q = (int64_t{1} << bits) - 1;
  x.codes.resize(static_cast<size_t>(rows) * cols);
  for (auto& c : x.codes) c = static_cast<uint16_t>(extreme ? q : rng() % (q + 1));
  for (int r = 0; r < rows; ++r) {
    x.zero_points.push_back(static_cast<int32_t>(extreme ? 0 : rng() % (q + 1)));
    x.scales.push_back(Dyadic{1 + static_cast<int64_t>(rng() % 65535), 10 + static_cast<int32_t>(rng() % 20)});
  }
  return x;
}

QuantizedLinear random_linear(int out, int in, int bits, int mantissa_bits, std::mt19937_64& rng,
                              bool extreme = false) {
  QuantizedLinear w;
  w.out_features = out;
  w.in_features = in;
  w.bits = bits;
  const int q = (1 << bits) - 1;
  w.codes.resize(static_cast<size_t>(out) * in);
  for (auto& c : w.codes) c = static_cast<uint8_t>(extreme ? q : rng() % (q + 1));
  const int64_t m_lo = int64_t{1} << (mantissa_bits - 1);
  for (int r = 0; r < out; ++r) {
    w.zero_points.push_back(static_cast<int32_t>(extreme ? 0 : rng() % (q + 1)));
    // Exponents spread over 20 values: the §9.1 spread cap and the rshr branch of the alignment are exercised.
    w.scales.push_back(Dyadic{m_lo + static_cast<int64_t>(rng() % m_lo), 5 + static_cast<int32_t>(rng() % 20)});
  }
  return w;
}

void expect_equal(const AlignedAccumulator& a, const AlignedAccumulator& b) {
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.scales, b.scales);
}

void expect_equal(const QuantizedActivation& a, const QuantizedActivation& b) {
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.zero_points, b.zero_points);
  EXPECT_EQ(a.scales, b.scales);
}

struct ThresholdGuard {  // forces every OpenMP region on, restores the default afterwards
  int64_t saved = parallel_work_threshold();
  ThresholdGuard() { set_parallel_work_threshold(0); }
  ~ThresholdGuard() { set_parallel_work_threshold(saved); }
};

TEST(DiMatMulFast, EqualsReferenceOnRandomShapes) {
  ThresholdGuard force_parallel;
  std::mt19937_64 rng(20261123);
  int cases = 0;
  for (int rows : {1, 7}) {
    for (int k : {1, 172, 513}) {
      for (int n : {1, 172, 513}) {
        for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 8}, std::pair{8, 4}, std::pair{6, 6}}) {
          for (int b_m : {8, 16}) {
            const QuantizedActivation x = random_activation(rows, k, a_bits, rng);
            const QuantizedLinear w = random_linear(n, k, w_bits, b_m, rng);
            const AlignedAccumulator want = di_matmul_accumulate(x, w, b_m);
            expect_equal(di_matmul_accumulate_fast(x, w, b_m), want);
            const PreparedLinear prepared = prepare_linear(w, b_m);
            expect_equal(di_matmul_accumulate_fast(x, prepared), want);
            for (int out_bits : {4, 8, 16}) expect_equal(di_matmul_fast(x, prepared, out_bits), di_matmul(x, w, out_bits, b_m));
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 144);
}

TEST(DiMatMulFast, ThreadCountDoesNotChangeTheResult) {
  ThresholdGuard force_parallel;
  std::mt19937_64 rng(5);
  const QuantizedActivation x = random_activation(9, 513, 8, rng);
  const QuantizedLinear w = random_linear(172, 513, 8, 16, rng);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const QuantizedActivation one = di_matmul_fast(x, w, 8, 16);
  omp_set_num_threads(2);
  const QuantizedActivation two = di_matmul_fast(x, w, 8, 16);
  omp_set_num_threads(3);
  const QuantizedActivation three = di_matmul_fast(x, w, 8, 16);
  omp_set_num_threads(saved);
  expect_equal(one, two);
  expect_equal(one, three);
}

// Worst cases of §3.6: every code at the maximum and zero points 0, so P = K·Q1·Q2 exactly.
TEST(DiMatMulFast, WorstCaseAccumulatorsEqualReference) {
  std::mt19937_64 rng(9);
  // int32 path at its limit (K·255² < 2^31 for K = 16384) and the int64 path (K = 40000 > 33025).
  for (int k : {16384, 40000}) {
    const QuantizedActivation x = random_activation(2, k, 8, rng, /*extreme=*/true);
    const QuantizedLinear w = random_linear(3, k, 8, 16, rng, /*extreme=*/true);
    const AlignedAccumulator fast = di_matmul_accumulate_fast(x, w, 16);
    expect_equal(fast, di_matmul_accumulate(x, w, 16));
    // Hand-derived: P = K·255·255 for every entry, times μ_j.
    const ColumnAlignment alignment = align_columns(w.scales, 16);
    EXPECT_EQ(fast.values[0], int64_t{k} * 255 * 255 * alignment.mantissas[0]);
  }
  // 16-bit input codes (softmax-width inputs) take the int64 loop.
  const QuantizedActivation x16 = random_activation(3, 172, 16, rng);
  const QuantizedLinear w8 = random_linear(64, 172, 8, 16, rng);
  expect_equal(di_matmul_accumulate_fast(x16, w8, 16), di_matmul_accumulate(x16, w8, 16));
}

TEST(DiMatMulFast, RejectsWhatTheReferenceRejects) {
  std::mt19937_64 rng(3);
  QuantizedActivation x = random_activation(2, 16, 4, rng);
  QuantizedLinear w = random_linear(5, 16, 4, 16, rng);
  QuantizedActivation bad_code = x;
  bad_code.codes[3] = 16;  // > 2^4 − 1
  EXPECT_THROW(di_matmul_accumulate_fast(bad_code, w, 16), Error);
  EXPECT_THROW(di_matmul_accumulate(bad_code, w, 16), Error);
  QuantizedActivation bad_zero = x;
  bad_zero.zero_points[1] = -1;
  EXPECT_THROW(di_matmul_accumulate_fast(bad_zero, w, 16), Error);
  QuantizedActivation bad_scale = x;
  bad_scale.scales[0].m = int64_t{1} << 31;
  EXPECT_THROW(di_matmul_accumulate_fast(bad_scale, w, 16), Error);
  QuantizedLinear bad_weight = w;
  bad_weight.codes[7] = 99;
  EXPECT_THROW(prepare_linear(bad_weight, 16), Error);
  QuantizedLinear wide_mantissa = w;
  wide_mantissa.scales[2].m = int64_t{1} << 24;
  EXPECT_THROW(prepare_linear(wide_mantissa, 16), Error);
  QuantizedActivation wrong_width = random_activation(2, 15, 4, rng);
  EXPECT_THROW(di_matmul_accumulate_fast(wrong_width, w, 16), Error);
  EXPECT_THROW(di_matmul_accumulate_fast(x, PreparedLinear{}), Error);
}

}  // namespace
}  // namespace illm
