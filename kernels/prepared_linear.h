#pragma once
// A linear layer made ready once, at model load, for repeated DI-MatMul calls (docs/integer-semantics.md
// "## DI-MatMul", "## Per-group DI-MatMul"): the column alignment (K2, μ) and the code sums CS of every
// (row, group) (one group per row for a per-row weight). It points at the weight's codes in
// their storage layout (no second copy of the codes).
#include <cstdint>
#include <vector>

#include "kernels/quantized_model.h"
#include "kernels/reference/di_matmul.h"  // ColumnAlignment, align_columns

namespace illm {

struct PreparedLinear {
  const QuantizedLinear* weight = nullptr;  // must outlive this object
  int mantissa_bits = 16;                   // b_m of the column alignment
  ColumnAlignment alignment;                // K2 and μ per (row, group) (§3.4, §9.1), [out][groups]
  std::vector<int64_t> code_sums;           // CS_(j,g) = Σ_(k in group g) W_jk, [out][groups]
  // Per-group weights of <= 8 bits only, for the one-pass optimized kernel (kernels/optimized/grouped_dot.h):
  // μ_(j,g) | z_(j,g) << 24 per block of 4 rows, per group, per row of the block ([⌈out/4⌉][groups][4], rows past
  // `out` zero), and Γ_j = Σ_g μ_(j,g)·(CS_(j,g) − G·z_(j,g)) in wrapping 64-bit arithmetic, [out].
  std::vector<uint32_t> group_terms;
  std::vector<uint64_t> group_gamma;
  // Per-group activations (act_group_size A > 0, weights per row or in groups of a multiple of A;
  // kernels/reference/act_group_matmul.h): the
  // code sums CS_(j,g) of every (row, activation group) for the optimized linear_act_groups, [⌈in/A⌉][out] (the layout
  // its per-group epilogue reads along the rows; < A·255 fits int32); empty otherwise.
  int32_t act_group_size = 0;
  std::vector<int32_t> act_group_code_sums;
  // Per-group activations with per-group weights: z_(j,h) and μ_(j,h) transposed to [group][row], so the optimized
  // kernel's per-weight-group step runs along contiguous rows; empty otherwise.
  std::vector<int32_t> weight_group_zero_points_by_group;
  std::vector<int64_t> weight_group_mantissas_by_group;
};

// Precondition: `weight` passed validate_quantized_model (or the checks of kernels/weight_codes.h): shape, codes,
// zero points and scale mantissas are not checked again here. Throws illm::Error (naming `what`) only when the
// column alignment fails (a scale mantissa wider than mantissa_bits) or mantissa_bits is outside [1, 24].
// act_group_size > 0 (the model's, for a block linear of a per-row weight) also prepares act_group_code_sums.
PreparedLinear prepare_linear(const QuantizedLinear& weight, int mantissa_bits, const char* what = "DI-MatMul",
                              int32_t act_group_size = 0);

}  // namespace illm
