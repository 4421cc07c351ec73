#pragma once
// The one-pass optimized DI-MatMul of per-group activations (act_group_dot.h): centres and packs the activation
// codes once per call (whole rows, the ISA's step layout) with every lane's λ and the per-(token, weight group) D
// terms, and runs the ISA's kernel on (row block, column block) tiles in parallel. Bit-for-bit equal to the
// reference kernels/reference/act_group_matmul.h.
#include <span>

#include "kernels/optimized/isa.h"
#include "kernels/prepared_linear.h"
#include "kernels/quantized_tensor.h"

namespace illm::optimized {

// True when the path has the kernel and the operands suit it: activations of <= 7 bits in groups of a multiple of 8
// columns, a weight of <= 8 bits per row or per group of G ∈ {32, 64, 128} (prepared group terms).
bool act_group_linear_applies(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w);

// out.values (rows × out_features, already sized) = P', given λ_(t,g) ([rows][groups], the caller's alignment).
// Returns false, leaving out.values as it was, when a centred code X − z does not fit a signed byte or a λ is
// 2^31 or more (not produced by validated models); the caller then runs another kernel. Precondition:
// act_group_linear_applies, and x's shapes checked (cols == in_features, one zero point and scale per group).
bool act_group_linear_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w,
                                 std::span<const int64_t> lambdas, AlignedAccumulator& out);

}  // namespace illm::optimized
