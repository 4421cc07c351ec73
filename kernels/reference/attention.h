#pragma once
// Integer attention over the KV cache (docs/method.md §7.5, §7.7, §9.1). Integer-only.
// Exact definition: docs/integer-semantics.md "## Executor" (attention).
//
// One head, one query row at position p (valid keys j <= p, causal):
//   P_j   = Σ_d (q_d − z_q)(K_jd − z_kj)                                int32 (head_dim · Q_a² <= 2^31 − 1)
//   (K2, μ_j) = align_columns(key scales of the valid keys, b_m)        column alignment over the cached keys
//   probs = di_clipped_softmax_row(P_j · μ_j, m_q, k_q + K2, clip)      P_j^I with scale 2^−(p_out−1)
//   (K_v, ν_j) = align_columns(value scales of the valid keys, b_m) ;  ν* = max_j ν_j
//   W_j   = rdiv(P_j^I · ν_j, ν*)                                       scale-ratio folding: 0 <= W_j <= P_j^I
//   acc_d = Σ_j W_j (V_jd − z_vj)                                        int32: |acc| <= 2^(p_out−1) · Q_v
//   out_d = acc_d · ν*,  real value out_d / 2^(K_v + p_out − 1)
// Then per token, over all heads: requantize_heads (common exponent, one DI_REQUANT).
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/kv_cache.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"
#include "kernels/trip_requant.h"

namespace illm {

// One head's attention output for one query row, written to out (head_dim values); returns the exponent E with
// real out_d = out_d / 2^E. valid_len = number of keys the query sees (position + 1), 1 <= valid_len <=
// keys.length == values.length. clip: c as a dyadic (m == 0: no clipping). Throws illm::Error on bad shapes or
// when head_dim · Q_a² or 2^(p_out−1) · Q_v exceeds int32. probs_out (empty: not wanted, else valid_len entries)
// receives the row's DI-ClippedSoftmax outputs P^I_j (scale 2^−(p_out−1)).
int32_t attention_head_row(const HeadCodes& query, int32_t query_bits, const KvHeadView& keys,
                           const KvHeadView& values, int32_t value_bits, int32_t valid_len, Dyadic clip,
                           const IntegerSettings& settings, std::span<int64_t> out,
                           std::span<int32_t> probs_out = {});

// Per-token requantization of all heads' outputs (values [heads][head_dim], head h real value v / 2^E_h):
// E = min(max_h E_h, min_h (E_h + 62 − bitlength(max |v_h|))) (no left shift leaves 2^62), each head brought to E
// (shl, or rshr when its E_h > E), then DI_REQUANT(·, m_in = 1, k_in = E, out_bits, b_m) → codes_out.
// `clip` clips that DI_REQUANT (site attn_out).
DiRequantResult requantize_heads(std::span<const int64_t> values, std::span<const int32_t> exponents, int out_bits,
                                 int mantissa_bits, std::span<uint16_t> codes_out, RequantClip clip = {},
                                 TripFactors trip = {});
// Its common exponent E from every head's max |v| (< 2^62) and exponent E_h; throws when E leaves int32.
int32_t requantize_heads_exponent(std::span<const uint64_t> max_abs, std::span<const int32_t> exponents);

// The argument checks of attention_layer (shared with the optimized attention): query sizes, head_dim against the
// cache's, the layer, heads a multiple of the KV heads, and the cache holding first_position + query.rows tokens.
// Returns heads / kv_heads and one key and one value view of layer `layer` per KV head.
struct AttentionInputs {
  int32_t group = 1;
  std::vector<KvHeadView> keys, values;
};
AttentionInputs attention_inputs(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                                 int32_t first_position);

// Causal multi-head attention (GQA: query head h reads KV head h / (heads / kv_heads)) of `query.rows` tokens in
// cache slots first_position, first_position + 1, … against layer `layer` of the cache, which must already hold
// these tokens' keys and values (the operator `attention`, kernels/kernel_set.h): query t sees slots
// [0, first_position + t]. Output: [rows][heads·head_dim] codes of out_bits bits, one zero point and dyadic per token
// (that requantization clipped by out_clip).
void attention_layer(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                     Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                     RequantClip out_clip = {});
// With TRIP factors on that requantization (site attn_out, kernels/trip_requant.h): codes out_bits +
// trip_extra_bits(trip) wide. Trip off: attention_layer bit for bit.
void attention_layer_trip(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                          int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                          QuantizedActivation& out, RequantClip out_clip, TripFactors trip,
                          std::span<int64_t> received = {});

// attention_layer, plus the attention each of the call's own tokens received (the operator `attention_scored`,
// token pruning): received[j] = Σ_h Σ_(t = j … rows−1) P^I_h(t, first_position + j), int64, received.size() ==
// query.rows. Bounded by heads · rows · 2^(p_out−1) < 2^62 for any real shape. attention_layer_trip with a
// non-empty `received` does both at once.
void attention_layer_scored(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                            int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                            QuantizedActivation& out, RequantClip out_clip, std::span<int64_t> received);

}  // namespace illm
