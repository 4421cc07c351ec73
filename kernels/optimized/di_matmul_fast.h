#pragma once
// DI-MatMul, the fast path (docs/method.md §3.3, §3.6): bit-for-bit equal to kernels/reference/di_matmul.h, computed as
//   P_tj = Σ_k X1_tk·W_jk − z2_j·RS_t − z1_t·CS_j + K·z1_t·z2_j      (RS_t = Σ_k X1_tk, CS_j = Σ_k W_jk offline)
// with the raw dot product in int32 on uint8 codes when the §3.6 bound K·Q1·Q2 <= 2^31 − 1 holds (every term is
// then non-negative and below 2^31), the combination in int64, and OpenMP over output columns. Wider codes or
// longer reductions use an int64 loop. Column alignment, P' and DI_REQUANT are exactly the reference's.
#include <cstdint>
#include <vector>

#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/di_matmul.h"

namespace illm {

// Work (multiply-adds or element operations) below which the kernels and the executor stay serial: a parallel region
// costs more than a few thousand operations. Default 2^16; 0 forces every OpenMP region on (tests of thread-count
// invariance). Results never depend on it.
void set_parallel_work_threshold(int64_t work);
int64_t parallel_work_threshold();

// A weight checked once and made ready for repeated use: code row sums CS_j and the column alignment (K2, μ_j).
// Keeps a pointer to `weight`, which must outlive it.
struct PreparedLinear {
  const QuantizedLinear* weight = nullptr;
  int mantissa_bits = 16;
  std::vector<int64_t> code_sums;  // CS_j = Σ_k W_jk
  ColumnAlignment alignment;
};

// Validates shape, codes, zero points and scales (illm::Error naming `what`) and precomputes the above.
PreparedLinear prepare_linear(const QuantizedLinear& weight, int mantissa_bits, const char* what = "DI-MatMul");

// The aligned accumulator P' (same as di_matmul_accumulate). Validates the input codes.
AlignedAccumulator di_matmul_accumulate_fast(const QuantizedActivation& x, const PreparedLinear& w,
                                             const char* what = "DI-MatMul");
AlignedAccumulator di_matmul_accumulate_fast(const QuantizedActivation& x, const QuantizedLinear& w, int mantissa_bits,
                                             const char* what = "DI-MatMul");

// requantize_rows with OpenMP over rows (same result).
QuantizedActivation requantize_rows_fast(const AlignedAccumulator& acc, int out_bits, int mantissa_bits);

// DI-MatMul with requantized output codes (same as di_matmul).
QuantizedActivation di_matmul_fast(const QuantizedActivation& x, const PreparedLinear& w, int out_bits,
                                   const char* what = "DI-MatMul");
QuantizedActivation di_matmul_fast(const QuantizedActivation& x, const QuantizedLinear& w, int out_bits,
                                   int mantissa_bits, const char* what = "DI-MatMul");

}  // namespace illm
