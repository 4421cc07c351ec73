#pragma once
// Activation tensors of the integer pipeline (docs/method.md §1.3, §3.2, §7.2): integer codes with one zero point
// and one dyadic scale per row (token, or (token, head) when a row is one head). Weights are
// QuantizedLinear (kernels/quantized_model.h). Real value of a code: (scale.m / 2^scale.k) · (code − zero_point).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/dyadic.h"

namespace illm {

// Per-row asymmetric unsigned codes in [0, 2^bits − 1], 1 <= bits <= 16 (matmul inputs: 4–8 bits;
// softmax inputs up to 16). Row-major [rows][cols].
struct QuantizedActivation {
  int32_t rows = 0;
  int32_t cols = 0;
  int32_t bits = 0;
  std::vector<uint16_t> codes;       // [rows][cols]
  std::vector<int32_t> zero_points;  // [rows], in [0, 2^bits − 1]
  std::vector<Dyadic> scales;        // [rows]

  uint16_t at(int32_t r, int32_t c) const { return codes[static_cast<size_t>(r) * cols + c]; }
};

// The residual stream (§7.2): per-row symmetric signed codes (int16; int8 range for 8-bit embeddings),
// zero point 0, codes in [−(2^(bits−1) − 1), 2^(bits−1) − 1].
struct ResidualStream {
  int32_t rows = 0;
  int32_t cols = 0;
  int32_t bits = 16;
  std::vector<int16_t> codes;  // [rows][cols]
  std::vector<Dyadic> scales;  // [rows]
};

// An aligned DI-MatMul accumulator P' (§3.4) handed to a fused consumer (residual add, softmax, …):
// real value of values[r][c] = values[r][c] · scales[r].m / 2^scales[r].k; zero point 0.
struct AlignedAccumulator {
  int32_t rows = 0;
  int32_t cols = 0;
  std::vector<int64_t> values;  // [rows][cols]
  std::vector<Dyadic> scales;   // [rows]
};

}  // namespace illm
