#pragma once
// The two sites of the online Walsh–Hadamard transform in the forward pass (docs/integer-semantics.md
// "## Walsh–Hadamard transform"). Each site is: a 16-bit symmetric requantization into int32 rows, the kernel set's
// `hadamard_rows` on them, then the per-token (or per-(token, head)) DI_REQUANT the site had without the transform.
// The halves before the transform are operators of the kernel set (`swiglu_symmetric`, `rope_symmetric`: these
// functions are their reference kernels); the executor calls hadamard_rows, then the plain sites' requantization.
//   hadamard_down:  DI-SwiGLU products → DI_REQUANT_SYM 16 bits → WHT of plan(C_f) → DI_REQUANT per token → down_proj
//   hadamard_qk:    q/k P' → DI_REQUANT_SYM 16 bits → RoPE → WHT of plan(d) per head → DI_REQUANT per (token, head)
// Every step is per token, so a prefill equals the same tokens decoded one at a time, bit for bit.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"

namespace illm {

// int32 rows with one dyadic per row, zero point 0: real value = values[r][c] · scales[r].m / 2^scales[r].k.
struct WideRows {
  int32_t rows = 0;
  int32_t cols = 0;
  std::vector<int32_t> values;  // [rows][cols]
  std::vector<Dyadic> scales;   // [rows]
};

// hadamard_down, before the transform: per token, DI-SwiGLU's products O (di_swiglu_products; gate and up 8-bit
// codes) requantized by DI_REQUANT_SYM to 16 bits (codes in [−(2^15 − 1), 2^15 − 1]) instead of DI_REQUANT to a_bits.
void swiglu_symmetric_rows(const QuantizedActivation& gate, const QuantizedActivation& up,
                           const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out);

// hadamard_qk, before the transform: per token, DI_REQUANT_SYM of P' to 16 bits, then RoPE of every head at position
// positions[t] (rope_rotate_row; positions.size() == acc.rows, consecutive unless tokens were pruned);
// |value| ≤ √2·(2^15 − 1)·(1 + 2^−14) + 1 < 46 345 (rope.h), the values rope_heads quantizes.
void rope_symmetric_rows(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                         std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                         WideRows& out);

// After the transform both sites requantize like the sites without it: the rows become an aligned accumulator
// (widen_rows: the same values and scales) for the kernel set's `requantize` (hadamard_down: DI_REQUANT per token,
// clipped by the down_in ratio) or `split_heads` (hadamard_qk: DI_REQUANT per (token, head), clipped by the q or k
// ratio).
void widen_rows(const WideRows& x, AlignedAccumulator& out);

// Shapes `out` for rows × cols values (sizes only; contents are overwritten).
void resize_wide_rows(WideRows& out, int32_t rows, int32_t cols);
// The shape checks of rope_symmetric_rows (illm::Error naming the mismatch).
void check_rope_symmetric_shapes(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                                 std::span<const int32_t> positions);

}  // namespace illm
