// The optimized Walsh–Hadamard rows. See hadamard_rows.h.
#include "kernels/optimized/hadamard_rows.h"

#include <algorithm>
#include <vector>

#include "kernels/optimized/parallel.h"

namespace illm::optimized {
namespace {

// In-place Sylvester butterflies on x[0 .. 2^log2_size − 1]. The first two stages are done four values at a time
// (a size-4 transform), the others pair two contiguous halves: loops the compiler vectorizes.
void butterflies(int32_t* x, int log2_size) {
  const int64_t size = int64_t{1} << log2_size;
  int64_t half = 1;
  if (log2_size >= 2) {
    for (int64_t j = 0; j < size; j += 4) {
      const int32_t a = x[j], b = x[j + 1], c = x[j + 2], d = x[j + 3];
      const int32_t s0 = a + b, d0 = a - b, s1 = c + d, d1 = c - d;
      x[j] = s0 + s1;
      x[j + 1] = d0 + d1;
      x[j + 2] = s0 - s1;
      x[j + 3] = d0 - d1;
    }
    half = 4;
  }
  for (; half < size; half <<= 1)
    for (int64_t start = 0; start < size; start += 2 * half) {
      int32_t* lo = x + start;
      int32_t* hi = lo + half;
      for (int64_t j = 0; j < half; ++j) {
        const int32_t a = lo[j], b = hi[j];
        lo[j] = a + b;
        hi[j] = a - b;
      }
    }
}

// One row: x ← H·x. `scratch` holds n values (Paley only).
void transform_row(const HadamardPlan& plan, int32_t* x, std::vector<int32_t>& scratch) {
  if (plan.kind == HadamardPlan::Kind::kWeightedBlocks) {
    for (const HadamardBlock& b : plan.blocks) {
      int32_t* block = x + b.offset;
      butterflies(block, b.log2_size);
      const int64_t size = int64_t{1} << b.log2_size;
      const int32_t weight = int32_t{1} << b.weight_shift;
      for (int64_t i = 0; i < size; ++i) block[i] *= weight;  // exact: |block[i]|·weight ≤ row_l1·max|x|
    }
    return;
  }
  const int64_t s = int64_t{1} << plan.log2_sylvester, m = plan.base_size;
  for (int64_t a = 0; a < m; ++a) butterflies(x + a * s, plan.log2_sylvester);
  if (plan.kind != HadamardPlan::Kind::kPaley) return;
  // Dense ±1 base along a, for all b at once: out[a][·] = Σ_a' P[a][a']·x[a'][·] (partial sums ≤ row_l1·max|x|).
  scratch.assign(static_cast<size_t>(plan.n), 0);
  for (int64_t a = 0; a < m; ++a) {
    int32_t* out = scratch.data() + a * s;
    for (int64_t a2 = 0; a2 < m; ++a2) {
      const int32_t* in = x + a2 * s;
      if (plan.base_matrix[a * m + a2] > 0) {
        for (int64_t b = 0; b < s; ++b) out[b] += in[b];
      } else {
        for (int64_t b = 0; b < s; ++b) out[b] -= in[b];
      }
    }
  }
  std::copy(scratch.begin(), scratch.end(), x);
}

}  // namespace

void hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<int32_t> values) {
  check_hadamard_rows(plan, rows, values);  // before any row changes, outside the parallel region
  const int64_t n = plan.n;
  int log2_n = 0;
  while ((int64_t{1} << log2_n) < n) ++log2_n;
  parallel_for(rows, n * (log2_n + plan.base_size), [&](int64_t r) {
    thread_local std::vector<int32_t> scratch;
    transform_row(plan, values.data() + r * n, scratch);
  });
}

}  // namespace illm::optimized
