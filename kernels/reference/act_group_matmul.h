#pragma once
// DI-MatMul of per-group activations (docs/integer-semantics.md "## Per-group activations"), the reference. x has
// one zero point z_(t,g) and dyadic (m_(t,g), k_(t,g)) per (token t, group g of G columns); the weight is per row
// (μ_j, K2 of its column alignment) or per group of G columns with A dividing G (μ_(j,h); "## Per-group activations
// with per-group weights": the sum below is then taken per weight group h, rounded by rshr(·, b_m) and multiplied by
// μ_(j,h), and those terms are added). Per token, the group dyadics are aligned to the coarsest group's exponent:
//   K1_t    = min_g k_(t,g) over the groups that are not all-zero (scale (1, 0)); 0 when every group is
//   λ_(t,g) = rshr(m_(t,g), k_(t,g) − K1_t), 0 for an all-zero group                    λ < 2^b_m
//   P_(t,j,g) = Σ_(c in g) (X_tc − z_(t,g))(W_jc − z_j)       int32 when G·Q1·Q2 <= 2^31 − 1, else int64
//   S_tj    = Σ_g P_(t,j,g)·λ_(t,g)                             int64, exact (|S| < in·Q1·Q2·2^b_m)
//   P'_tj   = rshr(S_tj, b_m)·μ_j,  real value P'_tj / 2^(K1_t − b_m + K2): the row dyadic (1, K1_t − b_m + K2)
// b_m is the weight's alignment mantissa budget (PreparedLinear::mantissa_bits, the model's mantissa_bits >= 2).
#include <span>

#include "kernels/prepared_linear.h"
#include "kernels/quantized_tensor.h"

namespace illm {

// The kernel-set operator `linear_act_groups` (kernels/kernel_set.h). Same preconditions as `linear`, plus: x has
// group_size A dividing x.cols and [rows][cols/A] zero points and scales, the weight per row or in groups of a
// multiple of A columns. Throws illm::Error on a shape mismatch or a weight group size that A does not divide.
void linear_act_groups_accumulate(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out);

// K1_t and λ_(t,g) of one token's group scales (the alignment above); lambdas.size() == scales.size().
int32_t align_activation_groups(std::span<const Dyadic> scales, std::span<int64_t> lambdas);

}  // namespace illm
