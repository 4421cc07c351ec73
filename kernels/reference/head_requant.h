#pragma once
// Per-(token, head) codes of the projections q, k and v (docs/method.md §7.4, §7.5; docs/integer-semantics.md
// "## Executor"): the operators `rope_heads` (q and k) and `split_heads` (v) of the kernel set.
#include <cstdint>

#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"

namespace illm {

// q or k: per token, DI_REQUANT_SYM of the projection's aligned accumulator to 16 bits (int32 codes), RoPE of every
// head at position first_position + t (rope_rotate_row), then DI_REQUANT per (token, head) of the rotated values
// (m_in, k_in = the 16-bit scale) to out_bits.
void rope_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                const RopeTableView& rope, const IntegerSettings& settings, int out_bits, PerHeadActivation& out,
                RequantClip clip = {});

// v: DI_REQUANT per (token, head) of the projection's aligned accumulator to out_bits.
// In both, `clip` clips every per-(token, head) DI_REQUANT (sites q, k, v).
void split_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const IntegerSettings& settings,
                 int out_bits, PerHeadActivation& out, RequantClip clip = {});

// Shapes `out` for rows × heads × head_dim codes of `bits` bits (sizes only; contents are overwritten).
void resize_per_head(PerHeadActivation& out, int32_t rows, int32_t heads, int32_t head_dim, int32_t bits);

}  // namespace illm
