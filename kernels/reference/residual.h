#pragma once
// Residual add of the int16 residual stream and a differently-scaled delta row (docs/method.md §7.2;
// docs/integer-semantics.md "## Residual add"). The result is requantized with DI_REQUANT_SYM to `out_bits`
// (16 by default) symmetric codes with a fresh per-row dyadic.
#include <cstdint>

#include "kernels/quantized_tensor.h"

namespace illm {

// Fused form: the delta is DI-MatMul's aligned accumulator P' (o_proj / down_proj epilogue), zero point 0.
ResidualStream residual_add(const ResidualStream& residual, const AlignedAccumulator& delta, int mantissa_bits,
                            int out_bits = 16);
// Separate-hop form (paper conformance): the delta is a per-row asymmetric code tensor (e.g. 16-bit codes).
ResidualStream residual_add(const ResidualStream& residual, const QuantizedActivation& delta, int mantissa_bits,
                            int out_bits = 16);

}  // namespace illm
