#pragma once
// Small integer models built directly from random codes and dyadic scales (no calibration), for the runtime's
// differential tests over settings the shared RTN test models do not use (paper-conformance numerics, 8-bit
// embeddings, 3-bit weights, a 4-bit head, odd widths, no clipping) and for the fuzz seeds. Scales are chosen so that
// activations stay in the operators' working ranges: weight steps of ~1/(2^(bits-1) sqrt(in)), unit embeddings,
// gamma ~ 1.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "formats/rope_tables.h"
#include "kernels/quantized_model.h"
#include "kernels/weight_codes.h"

namespace illm::rt_testing {

struct SyntheticShape {
  int32_t hidden = 16, intermediate = 24, layers = 2, heads = 4, kv_heads = 2, head_dim = 4, vocab = 40,
          max_positions = 32;
  IntegerSettings settings{};
  uint64_t seed = 1;
  bool clip_first_layer = true;  // layer 0 clipped at c = 15, the others unclipped
  int32_t group_size = 0;        // per-group block linears (G must divide every block linear's input width)
  int32_t head_group_size = 0;   // per-group LM head weights (G must divide hidden)
};

namespace detail {

// A scale m / 2^k with an m of `mantissa_bits` bits and log2(value) ~ -shift.
inline Dyadic random_scale(std::mt19937_64& rng, int mantissa_bits, int shift) {
  std::uniform_int_distribution<int64_t> m((int64_t{1} << (mantissa_bits - 1)), (int64_t{1} << mantissa_bits) - 1);
  return Dyadic{m(rng), mantissa_bits - 1 + shift};
}

inline QuantizedLinear random_linear(std::mt19937_64& rng, int32_t out, int32_t in, int32_t bits, int mantissa_bits,
                                     int gain_bits, int32_t group_size = 0) {
  QuantizedLinear w;
  w.group_size = group_size;
  w.out_features = out;
  w.in_features = in;
  w.bits = bits;
  const int32_t q = (1 << bits) - 1;
  std::uniform_int_distribution<int32_t> code(0, q), jitter(-1, 1);
  // Steps of ~1 / (2^(bits-1) sqrt(in)), times 2^gain_bits.
  const int shift = bits - 1 + static_cast<int>(std::ceil(0.5 * std::log2(static_cast<double>(in)))) - gain_bits;
  std::vector<uint8_t> codes;  // one per byte, then the storage layout (4-bit codes two per byte)
  for (int64_t i = 0; i < int64_t{out} * in; ++i) codes.push_back(static_cast<uint8_t>(code(rng)));
  w.codes = pack_weight_codes(bits, out, in, codes);
  for (int32_t r = 0; r < out * weight_groups(w); ++r) {  // one zero point and scale per (row, group)
    w.zero_points.push_back(std::clamp(q / 2 + jitter(rng), 0, q));
    w.scales.push_back(random_scale(rng, mantissa_bits, shift));
  }
  return w;
}

inline ChannelVector random_channels(std::mt19937_64& rng, int32_t n, int exponent, int64_t spread) {
  std::uniform_int_distribution<int64_t> delta(-spread, spread);
  ChannelVector v;
  v.exponent = exponent;
  for (int32_t c = 0; c < n; ++c) v.mantissa.push_back((int64_t{1} << exponent) + delta(rng));
  return v;
}

}  // namespace detail

inline QuantizedModel synthetic_model(const SyntheticShape& s) {
  std::mt19937_64 rng(s.seed);
  QuantizedModel m;
  m.shape = ModelShape{s.hidden, s.intermediate, s.layers, s.heads, s.kv_heads, s.head_dim, s.vocab, s.max_positions, 1, 2};
  m.settings = s.settings;
  m.norm_eps = Dyadic{42950, 32};  // ~1e-5
  const int b_m = s.settings.mantissa_bits;
  const int32_t q_embed = (1 << (s.settings.embed_bits - 1)) - 1;
  std::uniform_int_distribution<int32_t> embed(-q_embed, q_embed);
  for (int64_t i = 0; i < int64_t{s.vocab} * s.hidden; ++i) m.embed_codes.push_back(static_cast<int16_t>(embed(rng)));
  for (int32_t v = 0; v < s.vocab; ++v)
    m.embed_scales.push_back(detail::random_scale(rng, 30, s.settings.embed_bits - 1));  // codes / 2^(bits-1): ~unit
  const int32_t q_width = s.heads * s.head_dim, kv_width = s.kv_heads * s.head_dim;
  for (int32_t l = 0; l < s.layers; ++l) {
    QuantizedLayer L;
    L.attn_norm = detail::random_channels(rng, s.hidden, 14, 1 << 12);
    L.ffn_norm = detail::random_channels(rng, s.hidden, 14, 1 << 12);
    L.q_proj = detail::random_linear(rng, q_width, s.hidden, s.settings.w_bits, b_m, 1, s.group_size);
    L.k_proj = detail::random_linear(rng, kv_width, s.hidden, s.settings.w_bits, b_m, 1, s.group_size);
    L.v_proj = detail::random_linear(rng, kv_width, s.hidden, s.settings.w_bits, b_m, 0, s.group_size);
    L.o_proj = detail::random_linear(rng, s.hidden, q_width, s.settings.w_bits, b_m, 0, s.group_size);
    L.gate_proj = detail::random_linear(rng, s.intermediate, s.hidden, s.settings.w_bits, b_m, 0, s.group_size);
    L.up_proj = detail::random_linear(rng, s.intermediate, s.hidden, s.settings.w_bits, b_m, 0, s.group_size);
    L.down_proj = detail::random_linear(rng, s.hidden, s.intermediate, s.settings.w_bits, b_m, 0, s.group_size);
    L.swiglu_inv_alpha = detail::random_channels(rng, s.intermediate, 20, 1 << 19);
    L.softmax_clip = (l == 0 && s.clip_first_layer) ? Dyadic{15 << 11, 11} : Dyadic{0, 0};
    m.layers.push_back(L);
  }
  m.final_norm = detail::random_channels(rng, s.hidden, 14, 1 << 12);
  m.lm_head = detail::random_linear(rng, s.vocab, s.hidden, s.settings.head_bits, b_m, 2, s.head_group_size);
  const RopeTables tables = build_rope_tables(rope_default_inv_freq(s.head_dim, 10000.0), s.max_positions, 14);
  m.rope_frac_bits = tables.frac_bits;
  m.rope_cos = tables.cos;
  m.rope_sin = tables.sin;
  return m;
}

// The LM-head options together (head_in_bits 16: 16-bit head input codes; LM head weights per group of 32), on a W4A4
// model whose widths are multiples of 32: the shape the cross-compiled and board runs use for the feature.
inline SyntheticShape lm_head_options_shape(uint64_t seed = 1) {
  SyntheticShape s;
  s.hidden = 64;
  s.intermediate = 96;
  s.heads = 4;
  s.head_dim = 16;
  s.seed = seed;
  s.settings.head_in_bits = 16;
  s.head_group_size = 32;
  return s;
}

}  // namespace illm::rt_testing
