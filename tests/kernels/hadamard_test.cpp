// The integer Hadamard constructions of kernels/reference/hadamard.h: exact orthogonality in integers, the fast
// butterflies against a float64 matrix product, exact inner-product preservation at LLaMA sizes.
#include "kernels/reference/hadamard.h"

#include <climits>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/error.h"

namespace {

using namespace illm;

// H·Hᵀ = g·I checked entry by entry in int64, and every entry is ±2^j (j ≥ 0: no zero inside a Kronecker form).
void expect_orthogonal(const HadamardPlan& plan) {
  const int64_t n = plan.n;
  const std::vector<int32_t> h = hadamard_matrix(plan);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      int64_t dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += int64_t{h[i * n + k]} * h[j * n + k];
      ASSERT_EQ(dot, i == j ? plan.gain2 : 0) << plan.describe() << " rows " << i << ", " << j;
    }
  if (plan.kind != HadamardPlan::Kind::kWeightedBlocks) {
    for (int32_t v : h) ASSERT_TRUE(v == 1 || v == -1) << plan.describe();
  }
}

TEST(Hadamard, ConstructionsAreExactlyOrthogonal) {
  const struct {
    int64_t n;
    HadamardPlan::Kind kind;
    const char* describe;
  } cases[] = {{1, HadamardPlan::Kind::kSylvester, "Sylvester(1)"},
               {2, HadamardPlan::Kind::kSylvester, "Sylvester(2)"},
               {8, HadamardPlan::Kind::kSylvester, "Sylvester(8)"},
               {512, HadamardPlan::Kind::kSylvester, "Sylvester(512)"},
               {12, HadamardPlan::Kind::kPaley, "Paley(12) x Sylvester(1)"},
               {20, HadamardPlan::Kind::kPaley, "Paley(20) x Sylvester(1)"},
               {192, HadamardPlan::Kind::kPaley, "Paley(12) x Sylvester(16)"},       // tinybible hidden
               {88, HadamardPlan::Kind::kPaley, "Paley(44) x Sylvester(2)"},
               {172, HadamardPlan::Kind::kWeightedBlocks, "blocks(128 + 32x2 + 8x4 + 2x8 + 2x8)"},  // stories260K C_f
               {43, HadamardPlan::Kind::kWeightedBlocks, "blocks(16 + 16 + 4x2 + 4x2 + 1x4 + 1x4 + 1x4)"},
               {6, HadamardPlan::Kind::kWeightedBlocks, "blocks(4 + 1x2 + 1x2)"}};
  for (const auto& c : cases) {
    const HadamardPlan plan = plan_hadamard(c.n);
    EXPECT_EQ(plan.kind, c.kind) << c.n;
    EXPECT_EQ(plan.describe(), c.describe) << c.n;
    expect_orthogonal(plan);
  }
  // Paley's matrix is I + S with S skew-symmetric and a first row of ones.
  const HadamardPlan p12 = plan_hadamard(12);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(p12.base_matrix[i], 1);
    for (int64_t j = 0; j < 12; ++j)
      if (i != j) {
        EXPECT_EQ(p12.base_matrix[i * 12 + j], -p12.base_matrix[j * 12 + i]);
      }
  }
  EXPECT_THROW(plan_hadamard(0), illm::Error);
}

// The butterflies equal the explicit matrix times the vector (float64, exact for these magnitudes).
TEST(Hadamard, FastTransformEqualsMatrixProduct) {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int64_t> code(-32767, 32767);
  for (int64_t n : {1, 2, 8, 12, 43, 64, 172, 192, 512}) {
    const HadamardPlan plan = plan_hadamard(n);
    const std::vector<int32_t> h = hadamard_matrix(plan);
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<int64_t> x(n);
      for (auto& v : x) v = code(rng);
      std::vector<int64_t> y = x;
      hadamard_transform(plan, y.data());
      for (int64_t i = 0; i < n; ++i) {
        double ref = 0;
        for (int64_t k = 0; k < n; ++k) ref += static_cast<double>(h[i * n + k]) * static_cast<double>(x[k]);
        ASSERT_EQ(static_cast<double>(y[i]), ref) << plan.describe() << " row " << i;
        ASSERT_LE(std::abs(y[i]), plan.row_l1 * 32767);
      }
    }
  }
}

// Sizes too large for an explicit matrix (LLaMA-7B's 11008 = 172·64, 4096, 5120): ⟨Hx, Hy⟩ = g·⟨x, y⟩ exactly for
// random integer vectors, i.e. H/√g is orthogonal.
TEST(Hadamard, LargeSizesPreserveInnerProducts) {
  std::mt19937_64 rng(9);
  std::uniform_int_distribution<int64_t> code(-255, 255);
  const char* expected[] = {"Sylvester(4096)", "Paley(20) x Sylvester(256)",
                            "blocks(8192 + 2048x2 + 512x4 + 128x8 + 128x8)"};
  int index = 0;
  for (int64_t n : {4096, 5120, 11008}) {
    const HadamardPlan plan = plan_hadamard(n);
    EXPECT_EQ(plan.describe(), expected[index++]);
    std::vector<int64_t> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = code(rng);
      y[i] = code(rng);
    }
    int64_t xy = 0, xx = 0;
    for (int64_t i = 0; i < n; ++i) {
      xy += x[i] * y[i];
      xx += x[i] * x[i];
    }
    std::vector<int64_t> hx = x, hy = y;
    hadamard_transform(plan, hx.data());
    hadamard_transform(plan, hy.data());
    __int128 hxy = 0, hxx = 0;
    for (int64_t i = 0; i < n; ++i) {
      hxy += static_cast<__int128>(hx[i]) * hy[i];
      hxx += static_cast<__int128>(hx[i]) * hx[i];
    }
    EXPECT_TRUE(hxy == static_cast<__int128>(plan.gain2) * xy) << plan.describe();
    EXPECT_TRUE(hxx == static_cast<__int128>(plan.gain2) * xx) << plan.describe();
  }
  std::vector<int64_t> big(8, int64_t{1} << 61);
  EXPECT_THROW(hadamard_transform(plan_hadamard(8), big.data()), illm::Error);
}


// The operator hadamard_rows (int32 rows in place) equals hadamard_transform in int64 at its range bound, and refuses
// a row beyond it (naming the row) before changing any row.
TEST(Hadamard, RowsOperatorEqualsTheInt64TransformAndChecksItsRange) {
  std::mt19937_64 rng(3);
  for (int64_t n : {8, 32, 172, 192, 512}) {
    const HadamardPlan plan = plan_hadamard(n);
    const int64_t limit = INT32_MAX / plan.row_l1;
    std::uniform_int_distribution<int64_t> value(-limit, limit);
    std::vector<int32_t> x(static_cast<size_t>(3 * n));
    for (auto& v : x) v = static_cast<int32_t>(value(rng));
    x[0] = static_cast<int32_t>(limit);
    std::vector<int32_t> y = x;
    hadamard_rows(plan, 3, y);
    for (int64_t r = 0; r < 3; ++r) {
      std::vector<int64_t> want(x.begin() + r * n, x.begin() + (r + 1) * n);
      hadamard_transform(plan, want.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[r * n + i], want[i]) << plan.describe() << " row " << r;
    }
    std::vector<int32_t> bad = x;
    bad[2 * n + 1] = static_cast<int32_t>(-limit - 1);
    const std::vector<int32_t> before = bad;
    try {
      hadamard_rows(plan, 3, bad);
      ADD_FAILURE() << plan.describe() << ": no error";
    } catch (const illm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 2"), std::string::npos) << e.what();
    }
    EXPECT_EQ(bad, before);
  }
}

}  // namespace
