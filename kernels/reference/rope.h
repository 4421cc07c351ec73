#pragma once
// Integer RoPE rotation (docs/method.md §7.4, §9.1) with the fixed-point cos/sin tables built offline
// (formats/rope_tables.h) and stored with the model. Integer-only.
// Exact definition: docs/integer-semantics.md "## RoPE".
#include <cstdint>
#include <span>

#include "kernels/quantized_model.h"

namespace illm {

// Read-only view of the tables: cos/sin[p · half_dim + i] = round(cos|sin(p·θ_i) · 2^frac_bits).
struct RopeTableView {
  std::span<const int16_t> cos;
  std::span<const int16_t> sin;
  int32_t max_positions = 0;
  int32_t half_dim = 0;
  int32_t frac_bits = 14;
};

// The model's tables (QuantizedModel::rope_cos / rope_sin, [max_positions][head_dim/2]); checks the sizes.
RopeTableView rope_table_view(const QuantizedModel& model);

// Rotates one head vector x (length 2·half_dim, HF rotate_half pairing i ↔ i + d/2) in place at `position`:
//   y_i       = rshr(x_i · C[p,i] − x_{i+d/2} · S[p,i], F)
//   y_{i+d/2} = rshr(x_{i+d/2} · C[p,i] + x_i · S[p,i], F)
// F = tables.frac_bits; the scale of x is unchanged. Products are formed in int64 (int32 suffices for
// |x| ≤ 2^15 and F = 14); |y| ≤ √2·max|x|·(1 + 2^−F) + 1, so int16-range inputs can leave int16 range (kept int32).
// Results saturate to int32 (only reachable for |x| ≥ 2^30). Requires 0 <= position < max_positions, head.size() == 2·half_dim; throws illm::Error otherwise.
void rope_rotate_head(std::span<int32_t> head, int position, const RopeTableView& tables);

// rope_rotate_head on each of the row's heads (row.size() a multiple of head_dim == 2·half_dim).
void rope_rotate_row(std::span<int32_t> row, int head_dim, int position, const RopeTableView& tables);

}  // namespace illm
