#pragma once
// The optimized DI-MatMul (the operator `linear`, kernels/kernel_set.h), bit-for-bit equal to
// kernels/reference/di_matmul.h. With RS_t = Σ_k X_tk (per call), CS_j = Σ_k W_jk (prepared once) and o the weight
// offset of the ISA's byte reading (dot_block.h):
//   C_tj  = Σ_k X_tk · (W_jk − o)                                       int32 dot blocks, exact per K chunk
//   P'_tj = μ_j·C_tj − μ_j·(z2_j − o)·RS_t − μ_j·(CS_j − K·z2_j)·z1_t   = μ_j · Σ_k (X_tk − z1_t)(W_jk − z2_j)
// in wrapping 64-bit arithmetic (the true P' is below 2^63 in magnitude by validation, so wrapping is exact).
// Weights are read in their storage layout (packed 4-bit rows included): no second copy of the codes. Activations
// are packed once per call (bytes, zero padded, 4-bit even/odd blocks). K is split into chunks that keep each
// int32 block exact and the working set in L1/L2; OpenMP over (row block, column block) tiles.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/optimized/dot_block.h"
#include "kernels/optimized/isa.h"
#include "kernels/prepared_linear.h"
#include "kernels/quantized_tensor.h"

namespace illm::optimized {

void linear_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out);

// The operator `linear_act_groups` (per-group activations, kernels/reference/act_group_matmul.h), bit-for-bit equal
// to the reference: every (token, group) is packed as its own activation row (as for per-group weights), the dot
// blocks give C_(t,j,g) = Σ_(c in g) X_tc·(W_jc − o), and per group
//   P_(t,j,g) = C_(t,j,g) − (z_j − o)·RS_(t,g) − z_(t,g)·(CS_(j,g) − G·z_j)      (exact in int64)
//   S_tj     += P_(t,j,g)·λ_(t,g)                                                  (wrapping 64-bit, exact at the end)
// then P'_tj = rshr(S_tj, b_m)·μ_j, with CS_(j,g) = PreparedLinear::act_group_code_sums. A weight prepared without
// them (or codes wider than 8 bits) runs the reference kernel. Where the path has a one-pass kernel
// (act_group_linear.h: avx512vnni, activations of <= 7 bits) that one runs instead, on the same λ.
void linear_act_groups_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w,
                                  AlignedAccumulator& out);

// Rows of codes as the ISA's dot blocks read them (ActivationLayout), with their code sums.
struct PackedActivations {
  std::vector<uint8_t> codes;     // [rows][stride]
  size_t stride = 0;              // padded row length in bytes
  std::vector<int64_t> row_sums;  // Σ of each row's codes
};

// Packs `rows` rows of `cols` codes (row r at source + r·source_stride) for weights of `format`.
template <typename Code>
void pack_activations(const ActivationLayout& layout, WeightFormat format, const Code* source, size_t source_stride,
                      int32_t rows, int32_t cols, PackedActivations& out);

// The weight format of `bits`-bit codes, and the largest |code − offset| the dot blocks multiply.
WeightFormat weight_format(int32_t bits);
int64_t max_weight_magnitude(WeightFormat format, int32_t bits, int32_t byte8_offset);
// The longest K range (a multiple of `block`) whose int32 dot products stay exact for x_bits-wide activations.
int64_t exact_k_chunk(int32_t x_bits, int64_t max_weight, int32_t block);

}  // namespace illm::optimized
