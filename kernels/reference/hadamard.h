#pragma once
// Integer Hadamard matrices of any size and their exact fast transform (torch-free, integer arithmetic only).
// The rotations of calibration/rotation.h use the normalized matrix H/√g; the planned integer operator
// (docs/planned-operators.md, "Integer fast Walsh–Hadamard transform") applies exactly `hadamard_transform` to
// centered integer codes, with 1/√g folded into the weights' scales.
//
// Every matrix has integer entries and satisfies H·Hᵀ = g·I (g = `gain2`), so H/√g is orthogonal. Constructions,
// tried in this order for a size n:
//   1. Sylvester   n = 2^k:  H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]]  (H_ij = (−1)^popcount(i & j)), g = n.
//   2. Paley ⊗ Sylvester   n = m·2^k with m = p + 1 not a power of two, p prime, p ≡ 3 (mod 4) (m = 12, 20, 24,
//      44, 48, 60, ...; the smallest such m, i.e. the most butterfly stages, and m <= 256 so that the dense base
//      stays small: 11008 = 5504·2 has only m = 5504, a 5504² dense product per row, and takes form 3):
//      P_m ⊗ H_(2^k), g = n. P_m is Paley's
//      construction I: P = I + S with S = [[0, 1ᵀ], [−1, Q]], Q_ij = χ(j − i) the quadratic character modulo p.
//      (192 = 12·16.)
//   3. Weighted block-diagonal (any other n, e.g. 172 = 4·43): K = ⌊log2 n⌋ (K − 1 when n is odd and K is odd);
//      greedily blocks of Sylvester size 2^(K−2j) scaled by the integer 2^j (j = 0, 1, ...), as many as fit, so
//      every row has squared norm 2^(2j)·2^(K−2j) = 2^K: g = 2^K. (172 = 128 + 32 + 8 + 2 + 2, weights 1, 2, 4, 8, 8.)
//      Mixing is only inside a block: weaker than a full Hadamard matrix, exact and cheap.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace illm {

struct HadamardBlock {
  int64_t offset = 0;     // first index of the block
  int log2_size = 0;      // block size 2^log2_size
  int weight_shift = 0;   // entries ±2^weight_shift
};

struct HadamardPlan {
  enum class Kind { kSylvester, kPaley, kWeightedBlocks };
  Kind kind = Kind::kSylvester;
  int64_t n = 1;
  // Kronecker form (Sylvester, Paley): index i = a·2^k + b with a < base_size, b < 2^k.
  int64_t base_size = 1;             // m (1 for Sylvester)
  std::vector<int8_t> base_matrix;   // m×m row-major ±1 (Paley only)
  int log2_sylvester = 0;            // k
  std::vector<HadamardBlock> blocks; // weighted block-diagonal only
  int64_t gain2 = 1;                 // H·Hᵀ = gain2·I
  // max over rows of Σ_j |H_ij|: |(Hx)_i| ≤ row_l1·max|x| (the accumulator range of the transform)
  int64_t row_l1 = 1;
  std::string describe() const;      // e.g. "Paley(12) ⊗ Sylvester(16)"
};

// The construction used for size n ≥ 1 (see above).
HadamardPlan plan_hadamard(int64_t n);

// The explicit matrix, n×n row-major (tests and small sizes; n·n entries).
std::vector<int32_t> hadamard_matrix(const HadamardPlan& plan);

// x ← H·x in place, exact in int64 (no rounding anywhere). Stages: the Sylvester butterflies (each at most doubles
// max|x|), then the dense Paley base or the block weights; |result| ≤ row_l1·max|x| must fit int64 (the caller
// bounds its inputs; throws illm::Error when max|x|·row_l1 could overflow).
void hadamard_transform(const HadamardPlan& plan, int64_t* x);

// The operator `hadamard_rows` of the kernel set (docs/integer-semantics.md "## Walsh–Hadamard transform"):
// x ← H·x on each of `rows` consecutive rows of plan.n int32 values, in place (values.size() == rows·n), exact.
// Precondition, checked for every row before any row changes (illm::Error naming the row): max|x|·row_l1 ≤ 2^31 − 1,
// so that every butterfly stage, the Paley sums and the block weights stay inside int32.
void hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<int32_t> values);
// That precondition (and the size check) alone; the optimized kernels call it too.
void check_hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<const int32_t> values);

}  // namespace illm
