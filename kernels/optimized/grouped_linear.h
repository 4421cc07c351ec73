#pragma once
// The one-pass optimized per-group DI-MatMul (grouped_dot.h): packs the activations once per call (the ISA's
// layout, whole rows) with the code sum of every 16-weight-byte quad, and runs the ISA's grouped dot kernel on
// (row block, column block) tiles in parallel. Bit-for-bit equal to the reference per-group DI-MatMul.
#include "kernels/optimized/isa.h"
#include "kernels/prepared_linear.h"
#include "kernels/quantized_tensor.h"

namespace illm::optimized {

// True when the path has a grouped dot kernel and the weight suits it: per-group, G ∈ {32, 64, 128}, <= 8 bits,
// prepared group terms; 8-bit-or-narrower activations.
bool grouped_linear_applies(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w);

// out.values (rows × out_features, already sized) = P'. Precondition: grouped_linear_applies.
void grouped_linear_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w,
                               AlignedAccumulator& out);

}  // namespace illm::optimized
