#pragma once
// Per-group activations (docs/integer-semantics.md "## Per-group activations"): a linear's input quantized with one
// zero point and dyadic per (token, group of G consecutive channels) instead of per token. A site makes them in two
// steps: its operator emits 16-bit per-row codes as before (out_bits = 16), then every group of each row goes through
// its own DI_REQUANT to the site's width. Both steps are integer-only; the second is the path's own `requantize`
// run on the rows reshaped to one group per row (the same int64 values and the row's dyadic), so it needs no kernel
// of its own.
#include <cstdint>

#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"

namespace illm {

// G ∈ {8, 16, 32, 64, 128}: the group sizes a model may use (checked at load).
constexpr inline bool supported_act_group_size(int32_t g) {
  return g == 8 || g == 16 || g == 32 || g == 64 || g == 128;
}

// The groups of a width k: ⌈k/G⌉, each of G channels but the last, which is short (k mod G) when G does not divide k.
constexpr inline int32_t act_group_count(int32_t k, int32_t group_size) { return (k + group_size - 1) / group_size; }
// The channels of group `index` of a width k.
constexpr inline int32_t act_group_width(int32_t k, int32_t group_size, int32_t index) {
  return (index + 1) * group_size <= k ? group_size : k - index * group_size;
}

// The centered codes of per-row codes x as an aligned accumulator: values = code − zero point, the row's dyadic
// (exact). x must be per row.
void center_codes(const QuantizedActivation& x, AlignedAccumulator& out);

// The kernel-set operator `requantize` (kernels/kernel_set.h).
using RequantizeOperator = void (*)(const AlignedAccumulator& acc, int out_bits, int mantissa_bits,
                                    QuantizedActivation& out, RequantClip clip);

// Y = DI_REQUANT of every group of G columns of every row of acc (real value acc[t][c]·m_t/2^k_t) to out_bits codes,
// clipped by `clip` per group: out has group_size G and [rows][⌈cols/G⌉] zero points and scales. Runs `requantize`
// on acc reshaped to rows·cols/G rows of G columns (acc is restored before returning). When G does not divide
// acc.cols, every row's short last group is padded to G by repeating its last value (DI_REQUANT sees only min and
// max, so no code changes) in a copy, and the padding's codes are dropped. Throws illm::Error unless G >= 1.
void requantize_groups(RequantizeOperator requantize, AlignedAccumulator& acc, int32_t group_size, int out_bits,
                       int mantissa_bits, QuantizedActivation& out, RequantClip clip);

}  // namespace illm
