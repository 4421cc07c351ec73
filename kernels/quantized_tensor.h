#pragma once
// Activation tensors of the integer pipeline (docs/method.md §1.3, §3.2, §7.2): integer codes with one zero point
// and one dyadic scale per row (token, or (token, head) when a row is one head). Weights are
// QuantizedLinear (kernels/quantized_model.h). Real value of a code: (scale.m / 2^scale.k) · (code − zero_point).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"

namespace illm {

// Per-row asymmetric unsigned codes in [0, 2^bits − 1], 1 <= bits <= 16 (matmul inputs: 4–8 bits;
// softmax inputs up to 16). Row-major [rows][cols].
// With group_size G > 0 (per-group activations, docs/integer-semantics.md "## Per-group activations") each run of G
// consecutive columns of a row has its own zero point and dyadic: zero_points and scales are [rows][cols/G].
struct QuantizedActivation {
  int32_t rows = 0;
  int32_t cols = 0;
  int32_t bits = 0;
  std::vector<uint16_t> codes;       // [rows][cols]
  std::vector<int32_t> zero_points;  // [rows] (or [rows][⌈cols/G⌉]), in [0, 2^bits − 1]
  std::vector<Dyadic> scales;        // [rows] (or [rows][⌈cols/G⌉])
  int32_t group_size = 0;            // G: 0 = one zero point and scale per row; a short last group when G ∤ cols

  uint16_t at(int32_t r, int32_t c) const { return codes[static_cast<size_t>(r) * cols + c]; }
};

// Shapes `out` for rows × cols per-row codes of `bits` bits (sizes only; the operators overwrite the contents).
inline void resize_activation(QuantizedActivation& out, int32_t rows, int32_t cols, int32_t bits) {
  out.rows = rows;
  out.cols = cols;
  out.bits = bits;
  out.group_size = 0;
  out.codes.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  out.zero_points.resize(static_cast<size_t>(rows));
  out.scales.resize(static_cast<size_t>(rows));
}

// The residual stream (§7.2): per-row symmetric signed codes (int16; int8 range for 8-bit embeddings),
// zero point 0, codes in [−(2^(bits−1) − 1), 2^(bits−1) − 1].
struct ResidualStream {
  int32_t rows = 0;
  int32_t cols = 0;
  int32_t bits = 16;
  std::vector<int16_t> codes;  // [rows][cols]
  std::vector<Dyadic> scales;  // [rows]
};

// One quantized head vector: head_dim codes, zero point, scale (a row of Q, K or V for one head).
struct HeadCodes {
  std::span<const uint8_t> codes;
  int32_t zero_point = 0;
  Dyadic scale;
};

// Activations quantized per (token, head): [rows][heads][head_dim] unsigned codes of `bits` bits, one zero point
// and one dyadic per (row, head). Used for Q, K and V (§7.4, §7.5).
struct PerHeadActivation {
  int32_t rows = 0;
  int32_t heads = 0;
  int32_t head_dim = 0;
  int32_t bits = 0;
  std::vector<uint8_t> codes;        // [rows][heads][head_dim]
  std::vector<int32_t> zero_points;  // [rows][heads]
  std::vector<Dyadic> scales;        // [rows][heads]

  HeadCodes head(int32_t row, int32_t h) const {
    const size_t index = static_cast<size_t>(row) * heads + h;
    return HeadCodes{std::span<const uint8_t>(codes.data() + index * head_dim, static_cast<size_t>(head_dim)),
                     zero_points[index], scales[index]};
  }
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
