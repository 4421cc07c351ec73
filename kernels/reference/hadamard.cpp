// Integer Hadamard constructions and the exact fast transform. See hadamard.h.
#include "kernels/reference/hadamard.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace illm {
namespace {

bool is_prime(int64_t p) {
  if (p < 2) return false;
  for (int64_t d = 2; d * d <= p; ++d)
    if (p % d == 0) return false;
  return true;
}

bool is_power_of_two(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

int floor_log2(int64_t n) { return 63 - std::countl_zero(static_cast<uint64_t>(n)); }

// Paley construction I for m = p + 1 (p prime, p ≡ 3 mod 4): m×m ±1, P·Pᵀ = m·I.
std::vector<int8_t> paley_matrix(int64_t m) {
  const int64_t p = m - 1;
  std::vector<int8_t> chi(p, -1);  // quadratic character χ(x) for x in 0..p−1
  chi[0] = 0;
  for (int64_t x = 1; x < p; ++x) chi[(x * x) % p] = 1;
  std::vector<int8_t> h(m * m, 0);
  auto at = [&](int64_t i, int64_t j) -> int8_t& { return h[i * m + j]; };
  for (int64_t j = 1; j < m; ++j) {
    at(0, j) = 1;   // S row 0: 1ᵀ
    at(j, 0) = -1;  // S column 0: −1
  }
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < p; ++j) at(i + 1, j + 1) = chi[((j - i) % p + p) % p];  // Q_ij = χ(j − i)
  for (int64_t i = 0; i < m; ++i) at(i, i) = 1;  // + I (the diagonal of S is 0)
  return h;
}

// In-place Sylvester butterflies on x[0], x[stride], ..., x[(2^k − 1)·stride].
void sylvester_butterflies(int64_t* x, int log2_size, int64_t stride) {
  const int64_t size = int64_t{1} << log2_size;
  for (int64_t half = 1; half < size; half <<= 1)
    for (int64_t start = 0; start < size; start += 2 * half)
      for (int64_t j = start; j < start + half; ++j) {
        const int64_t a = x[j * stride], b = x[(j + half) * stride];
        x[j * stride] = a + b;
        x[(j + half) * stride] = a - b;
      }
}

}  // namespace

std::string HadamardPlan::describe() const {
  switch (kind) {
    case Kind::kSylvester: return "Sylvester(" + std::to_string(n) + ")";
    case Kind::kPaley:
      return "Paley(" + std::to_string(base_size) + ") x Sylvester(" + std::to_string(int64_t{1} << log2_sylvester) +
             ")";
    case Kind::kWeightedBlocks: {
      std::string s = "blocks(";
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (i) s += " + ";
        s += std::to_string(int64_t{1} << blocks[i].log2_size);
        if (blocks[i].weight_shift) s += "x" + std::to_string(int64_t{1} << blocks[i].weight_shift);
      }
      return s + ")";
    }
  }
  return "?";
}

HadamardPlan plan_hadamard(int64_t n) {
  if (n < 1) throw Error("hadamard: size must be >= 1, got " + std::to_string(n));
  HadamardPlan plan;
  plan.n = n;
  if (is_power_of_two(n)) {
    plan.kind = HadamardPlan::Kind::kSylvester;
    plan.log2_sylvester = floor_log2(n);
    plan.gain2 = n;
    plan.row_l1 = n;
    return plan;
  }
  // Paley ⊗ Sylvester with the smallest admissible base m (most butterfly stages), a small dense base only.
  constexpr int64_t kMaxPaleyBase = 256;
  for (int k = std::countr_zero(static_cast<uint64_t>(n)); k >= 0; --k) {
    const int64_t m = n >> k;
    if (m > kMaxPaleyBase) break;
    if (m % 4 == 0 && !is_power_of_two(m) && is_prime(m - 1)) {
      plan.kind = HadamardPlan::Kind::kPaley;
      plan.base_size = m;
      plan.base_matrix = paley_matrix(m);
      plan.log2_sylvester = k;
      plan.gain2 = n;
      plan.row_l1 = n;
      return plan;
    }
  }
  // Weighted block-diagonal: sizes 2^(K−2j) with weights 2^j, so every row has squared norm 2^K.
  int K = floor_log2(n);
  if (n % 2 == 1 && K % 2 == 1) --K;  // an odd n needs blocks of size 1, i.e. an even K
  plan.kind = HadamardPlan::Kind::kWeightedBlocks;
  plan.gain2 = int64_t{1} << K;
  plan.row_l1 = 0;
  int64_t offset = 0;
  for (int j = 0; 2 * j <= K && offset < n; ++j) {
    const int log2_size = K - 2 * j;
    const int64_t size = int64_t{1} << log2_size;
    while (offset + size <= n) {
      plan.blocks.push_back({offset, log2_size, j});
      plan.row_l1 = std::max(plan.row_l1, size << j);
      offset += size;
    }
  }
  if (offset != n) throw Error("hadamard: no block decomposition of " + std::to_string(n));  // unreachable
  return plan;
}

std::vector<int32_t> hadamard_matrix(const HadamardPlan& plan) {
  const int64_t n = plan.n;
  std::vector<int32_t> h(static_cast<size_t>(n * n), 0);
  auto sylvester = [](int64_t i, int64_t j) { return (std::popcount(static_cast<uint64_t>(i & j)) & 1) ? -1 : 1; };
  if (plan.kind == HadamardPlan::Kind::kWeightedBlocks) {
    for (const HadamardBlock& b : plan.blocks) {
      const int64_t size = int64_t{1} << b.log2_size;
      for (int64_t i = 0; i < size; ++i)
        for (int64_t j = 0; j < size; ++j)
          h[(b.offset + i) * n + b.offset + j] = sylvester(i, j) * (1 << b.weight_shift);
    }
    return h;
  }
  // Kronecker product base ⊗ Sylvester(2^k): H[(a,b),(a',b')] = base[a][a']·S[b][b'].
  const int64_t s = int64_t{1} << plan.log2_sylvester, m = plan.base_size;
  for (int64_t a = 0; a < m; ++a)
    for (int64_t a2 = 0; a2 < m; ++a2) {
      const int base = plan.kind == HadamardPlan::Kind::kPaley ? plan.base_matrix[a * m + a2] : 1;
      for (int64_t b = 0; b < s; ++b)
        for (int64_t b2 = 0; b2 < s; ++b2) h[(a * s + b) * n + a2 * s + b2] = base * sylvester(b, b2);
    }
  return h;
}

void hadamard_transform(const HadamardPlan& plan, int64_t* x) {
  const int64_t n = plan.n;
  int64_t max_abs = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] == std::numeric_limits<int64_t>::min()) throw Error("hadamard_transform: input INT64_MIN");
    max_abs = std::max(max_abs, x[i] < 0 ? -x[i] : x[i]);
  }
  if (max_abs > 0 && max_abs > std::numeric_limits<int64_t>::max() / plan.row_l1)
    throw Error("hadamard_transform: max |x| = " + std::to_string(max_abs) + " times the row norm " +
                std::to_string(plan.row_l1) + " overflows int64");
  if (plan.kind == HadamardPlan::Kind::kWeightedBlocks) {
    for (const HadamardBlock& b : plan.blocks) {
      sylvester_butterflies(x + b.offset, b.log2_size, 1);
      for (int64_t i = 0; i < (int64_t{1} << b.log2_size); ++i) x[b.offset + i] *= int64_t{1} << b.weight_shift;
    }
    return;
  }
  const int64_t s = int64_t{1} << plan.log2_sylvester, m = plan.base_size;
  for (int64_t a = 0; a < m; ++a) sylvester_butterflies(x + a * s, plan.log2_sylvester, 1);
  if (plan.kind != HadamardPlan::Kind::kPaley) return;
  std::vector<int64_t> column(m);
  for (int64_t b = 0; b < s; ++b) {  // dense base along a, for each b
    for (int64_t a = 0; a < m; ++a) {
      int64_t acc = 0;
      for (int64_t a2 = 0; a2 < m; ++a2) acc += plan.base_matrix[a * m + a2] * x[a2 * s + b];
      column[a] = acc;
    }
    for (int64_t a = 0; a < m; ++a) x[a * s + b] = column[a];
  }
}

void check_hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<const int32_t> values) {
  const int64_t n = plan.n;
  if (rows < 0 || values.size() != static_cast<size_t>(rows) * static_cast<size_t>(n))
    throw Error("hadamard_rows: " + std::to_string(values.size()) + " values for " + std::to_string(rows) +
                " rows of " + std::to_string(n));
  const int64_t limit = std::numeric_limits<int32_t>::max() / plan.row_l1;  // max|x|·row_l1 ≤ 2^31 − 1
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* row = values.data() + r * n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = row[i];
      if (v > limit || v < -limit)
        throw Error("hadamard_rows: row " + std::to_string(r) + " holds " + std::to_string(v) + "; the transform " +
                    plan.describe() + " (row norm " + std::to_string(plan.row_l1) + ") needs |x| <= " +
                    std::to_string(limit) + " to stay inside int32");
    }
  }
}

void hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<int32_t> values) {
  check_hadamard_rows(plan, rows, values);
  const int64_t n = plan.n;
  std::vector<int64_t> row(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* x = values.data() + r * n;
    std::copy(x, x + n, row.begin());
    hadamard_transform(plan, row.data());
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<int32_t>(row[i]);  // |row[i]| ≤ row_l1·max|x| ≤ 2^31 − 1
  }
}

}  // namespace illm
