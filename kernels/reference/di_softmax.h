#pragma once
// DI-ClippedSoftmax (docs/method.md §4.1–§4.5, §9.1): one attention row, integer-only.
// Exact definition: docs/integer-semantics.md "## DI-ClippedSoftmax".
#include <cstdint>
#include <span>

#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"

namespace illm {

// What the row produced besides the probabilities (for diagnostics and tests).
struct DiSoftmaxRow {
  int32_t valid_len = 0;  // number of unmasked keys
  Dyadic input_scale;     // (m_x, k_x) of the clipped, requantized softmax input x^I ∈ [−Q_s, 0]
  int64_t abs_t = 0;      // DI-Exp's 1.0 (|t|) after promotion
  int64_t exp_sum = 0;    // Σ_j E_j over the valid keys
};

// Probabilities of one row of logits. Key j is valid iff j < valid_len (causal masking: valid_len = query
// position + 1); masked keys get probability exactly 0 and take no part in the max, the clip range or the sum.
// logits_aligned[j] is the column-aligned Q·Kᵀ accumulator, real logit = logits_aligned[j] · m_in / 2^k_in
// (|logits_aligned[j]| < 2^62, 1 <= m_in < 2^31). clip = c as a dyadic c.m / 2^c.k (c.m == 0: no clipping).
// Steps:
//   v_max = max_valid v ;  c^I = cdiv(c.m · 2^k_in, m_in · 2^c.k) (saturated at 2^62)
//   lo = max(min_valid v, v_max − c^I) ;  d_j = max(v_j, lo) − v_max ∈ [lo − v_max, 0]
//   (Y, z, m_x, k_x) = DI_REQUANT(d_valid, m_in, k_in, n_s = settings.softmax_in_bits, b_m = settings.mantissa_bits)
//   x_j = Y_j − z ∈ [−Q_s, 0] ;  f = di_exp_frame(m_x, k_x) ;  E_j = di_exp(di_exp_promote(x_j, f), f.t, quadratic)
//   Σ = Σ_valid E_j ;  P_j = fdiv(E_j · 2^(p_out − 1), Σ)         (exact IntDiv; p_out = settings.prob_bits)
// Output probs_out[j] = P_j with scale 2^−(p_out−1): Σ_j P_j ≤ 2^(p_out−1); a single valid key gets
// exactly 2^(p_out−1). Requires probs_out.size() == logits_aligned.size(), 0 <= valid_len <= size,
// 1 <= p_out <= 31, 1 <= n_s <= 16; throws illm::Error otherwise.
DiSoftmaxRow di_clipped_softmax_row(std::span<const int64_t> logits_aligned, int64_t m_in, int32_t k_in,
                                    int valid_len, Dyadic clip, const IntegerSettings& settings,
                                    std::span<int32_t> probs_out);

// c^I = cdiv(c.m · 2^k_in, m_in · 2^c.k): the clip constant in the units of the aligned logits, computed in
// 128 bits and saturated at 2^62 (a clip wider than any row = no clipping). c.m == 0 returns 2^62.
int64_t softmax_clip_in_logit_units(Dyadic clip, int64_t m_in, int32_t k_in);

}  // namespace illm
