#pragma once
// DI-MatMul, the reference (docs/method.md §3.2–3.6, §9.1; docs/integer-semantics.md "## DI-MatMul").
// Y = X1 · X2 with X1 per-row (token) asymmetric codes and X2 given transposed, [N][K] row-major (a linear
// layer's weights [out][in], or the K cache [keys][d] for Q·Kᵀ), per-N-row zero point and dyadic scale.
//   P_tj  = Σ_k (X1_tk − z1_t)(X2_jk − z2_j)                  int32 when the §3.6 bound holds, else int64
//   P'_tj = P_tj · μ_j, real value P'_tj · m1_t / 2^(k1_t + K2)  column alignment (§3.4, §9.1)
//   Y     = DI_REQUANT(P'_t·, m1_t, k1_t + K2, n_o, b_m)        per row
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"

namespace illm {

struct PreparedLinear;  // kernels/prepared_linear.h

enum class AccumulatorKind { kInt32, kInt64 };

// int32 iff reduction_length · max_abs1 · max_abs2 <= 2^31 − 1 (§3.6 worst case of |P|).
AccumulatorKind accumulator_kind_for_bound(int64_t reduction_length, int64_t max_abs1, int64_t max_abs2);
// Same for asymmetric codes with zero points in range: max|X − z| = 2^bits − 1.
AccumulatorKind accumulator_kind(int64_t reduction_length, int a_bits, int w_bits);

// Column alignment (§3.4 with the §9.1 spread cap): K2 = min(max_j k2_j, min_j k2_j + 24 − b_m);
// μ_j = shl(m2_j, K2 − k2_j) if k2_j <= K2, else rshr(m2_j, k2_j − K2). Every μ_j < 2^24 (throws
// illm::Error naming the column otherwise, i.e. when some m2_j has more than b_m bits).
struct ColumnAlignment {
  int32_t exponent = 0;            // K2
  std::vector<int64_t> mantissas;  // μ_j
};
ColumnAlignment align_columns(std::span<const Dyadic> column_scales, int mantissa_bits);

// The aligned accumulator P' with per-row dyadic (m1_t, k1_t + K2), for fused consumers.
// Throws illm::Error (naming `what`) on shape mismatch, codes or zero points out of range, or when
// K · max|X1 − z1| · max|X2 − z2| · 2^24 could reach 2^63.
AlignedAccumulator di_matmul_accumulate(const QuantizedActivation& x, const QuantizedLinear& w, int mantissa_bits,
                                        const char* what = "DI-MatMul");
AlignedAccumulator di_matmul_accumulate(const QuantizedActivation& x, const QuantizedActivation& x2_transposed,
                                        int mantissa_bits, const char* what = "DI-MatMul");

// The kernel-set operator `linear` (kernels/kernel_set.h): P' of x and a prepared weight, written to out. No
// validation: the model was validated at load (validate_quantized_model) and x comes from an operator that emits
// codes and zero points in range, x.cols == in_features, scale mantissas in [1, 2^31).
void linear_accumulate(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out);

// Per-row DI_REQUANT of an aligned accumulator to out_bits (1..16) unsigned codes (the operator `requantize`),
// clipped by `clip` when enabled.
void requantize_rows(const AlignedAccumulator& acc, int out_bits, int mantissa_bits, QuantizedActivation& out,
                     RequantClip clip = {});
QuantizedActivation requantize_rows(const AlignedAccumulator& acc, int out_bits, int mantissa_bits);

// DI-MatMul with requantized output codes.
QuantizedActivation di_matmul(const QuantizedActivation& x, const QuantizedLinear& w, int out_bits, int mantissa_bits,
                              const char* what = "DI-MatMul");
QuantizedActivation di_matmul(const QuantizedActivation& x, const QuantizedActivation& x2_transposed, int out_bits,
                              int mantissa_bits, const char* what = "DI-MatMul");

}  // namespace illm
