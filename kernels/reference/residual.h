#pragma once
// Residual add of the int16 residual stream and a differently-scaled delta row (docs/method.md §7.2;
// docs/integer-semantics.md "## Residual add"). The result is requantized with DI_REQUANT_SYM to `out_bits`
// (16 by default) symmetric codes with a fresh per-row dyadic.
#include <cstdint>
#include <span>

#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"

namespace illm {

// Fused form: the delta is DI-MatMul's aligned accumulator P' (o_proj / down_proj epilogue), zero point 0. The
// output-parameter form is the operator `residual_add` (kernels/kernel_set.h); `out` may be `residual` itself.
void residual_add(const ResidualStream& residual, const AlignedAccumulator& delta, int mantissa_bits, int out_bits,
                  ResidualStream& out);
ResidualStream residual_add(const ResidualStream& residual, const AlignedAccumulator& delta, int mantissa_bits,
                            int out_bits = 16);
// The per-row decisions of the residual add (docs/integer-semantics.md "## Residual add"), from max |h|, max |d − z_d|
// and the two scales: the delta's pre-shift L, the two terms' rshr amounts (negative: exact left shift; clamped to
// [−62, 64]) and the common exponent K. Then per element a = rshr(h·m_h, residual_shift),
// b = rshr(rshr(d − z_d, delta_shift)·m_d, delta_term_shift) and DI_REQUANT_SYM(a + b, 1, K). Throws on scale
// mantissas outside [1, 2^31) or an exponent outside int32.
struct ResidualAddPlan {
  int delta_shift = 0;
  int residual_shift = 0;
  int delta_term_shift = 0;
  int32_t exponent = 0;
};
ResidualAddPlan plan_residual_add(int64_t h_max, Dyadic s_h, uint64_t d_max, Dyadic s_d);

// One row of the fused form: residual codes h (scale s_h) plus delta (scale s_d) → out (may alias h).
DiRequantResult residual_add_row(std::span<const int16_t> h, Dyadic s_h, std::span<const int64_t> delta, Dyadic s_d,
                                 int mantissa_bits, int out_bits, std::span<int16_t> out);
// Separate-hop form (paper conformance): the delta is a per-row asymmetric code tensor (e.g. 16-bit codes).
ResidualStream residual_add(const ResidualStream& residual, const QuantizedActivation& delta, int mantissa_bits,
                            int out_bits = 16);

}  // namespace illm
