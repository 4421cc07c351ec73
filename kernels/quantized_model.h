#pragma once
// The integer model: everything the integer executor needs, as plain data, integers only.
//
// Calibration (calibration/) fills it, the model file (formats/illm_file.*) stores and loads it, the
// executor (kernels/executor.*) runs it. The executor never reads files. Names of the numerics follow
// docs/integer-semantics.md and docs/method.md (section numbers in comments).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dyadic.h"   // Dyadic (m / 2^k)
#include "kernels/requant.h"  // RequantClip
#include "kernels/trip_requant.h"  // TripFactors

namespace illm {

// Shapes of a LLaMA decoder (integers only; rms_norm_eps and rope_theta live in the float side and
// reach the executor as the integer tables/constants below).
struct ModelShape {
  int32_t hidden = 0;         // C
  int32_t intermediate = 0;   // C_f
  int32_t n_layers = 0;
  int32_t n_heads = 0;        // H
  int32_t n_kv_heads = 0;     // H_kv
  int32_t head_dim = 0;       // d = C / H
  int32_t vocab = 0;
  int32_t max_positions = 0;  // rows of the RoPE tables
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  friend bool operator==(const ModelShape&, const ModelShape&) = default;
};

// Numeric settings of the integer pipeline (docs/method.md §9.1). Defaults are the project's frozen
// defaults; the "paper conformance" switch selects the paper's literal choices.
struct IntegerSettings {
  int32_t w_bits = 4;             // weight code width of the 7 block linears
  int32_t a_bits = 4;             // activation code width at block matmul inputs (and Q, K, V unless qkv_bits)
  int32_t qkv_bits = 0;           // Q, K and V code width (the KV cache, Q·Kᵀ, P·V), 2..8; 0 = a_bits (format v5)
  int32_t mantissa_bits = 16;     // b_m: dyadic mantissa budget (paper: 8)
  int32_t softmax_in_bits = 16;   // n_s (paper: 8)
  int32_t prob_bits = 16;         // p_out (paper: 8)
  int32_t sigmoid_bits = 15;      // p_sigma (paper: 8)
  int32_t swiglu_in_bits = 8;     // gate/up output codes
  int32_t norm_frac_bits = 14;    // F of DI-Norm
  int32_t head_bits = 8;          // LM head weight width (and input width unless head_in_bits is set)
  int32_t head_in_bits = 0;       // LM head input width (final DI-Norm output), 2..16; 0 = head_bits (format v4)
  int32_t embed_bits = 16;        // embedding rows (int16 default, int8 for deployment)
  bool exp_quadratic = true;      // DI-Exp 2^u: quadratic (default) or linear (paper)
  bool sigmoid_stable = true;     // DI-SwiGLU sigmoid: stable elementwise (default) or shared max (paper)
  bool paper_conformance = false; // set when the settings above were switched to the paper's choices
  friend bool operator==(const IntegerSettings&, const IntegerSettings&) = default;
};

// The width of the Q, K and V codes: the per-(token, head) requantizations after RoPE and of v, hence the KV cache
// and both attention matmuls.
inline int32_t qkv_code_bits(const IntegerSettings& s) { return s.qkv_bits > 0 ? s.qkv_bits : s.a_bits; }

// The width of the LM head's input codes (the final DI-Norm's output).
inline int32_t head_input_bits(const IntegerSettings& s) { return s.head_in_bits > 0 ? s.head_in_bits : s.head_bits; }

// The paper's literal integer choices (docs/method.md §9.1 "conformance" column) on top of `base`: 8-bit dyadic
// mantissas, 8-bit softmax input and probabilities, linear DI-Exp, shared-max sigmoid with 8-bit output.
inline IntegerSettings paper_conformance_settings(IntegerSettings base = {}) {
  base.mantissa_bits = 8;
  base.softmax_in_bits = 8;
  base.prob_bits = 8;
  base.sigmoid_bits = 8;
  base.exp_quadratic = false;
  base.sigmoid_stable = false;
  base.paper_conformance = true;
  return base;
}

// A linear layer y = x · Wᵀ with W quantized asymmetrically (LWC, §1.3) per output row, or per group of
// G = group_size consecutive input columns of a row (docs/integer-semantics.md "## Per-group DI-MatMul"):
// W[r][c] ≈ scale[r·groups + c/G] · (code(r, c) − zero_point[r·groups + c/G]), groups = in/G.
// group_size 0 means per row (one group of `in` columns; zero_points and scales have `out` entries).
//
// `codes` holds the codes in the storage layout of the model file (docs/model-format.md), and this is the only copy
// of them: the kernels read this layout directly.
//   bits <= 4: two codes per byte, each row packed on its own: row r occupies bytes [r·R, (r+1)·R) with
//              R = ⌈in/2⌉; code 2i of the row is the low nibble of byte i, code 2i+1 the high nibble; an odd row
//              ends with a zero high nibble.
//   bits 5–8:  one code per byte, row-major [out][in].
// Read codes through weight_code() / unpack_weight_row() (kernels/weight_codes.h), never by indexing `codes`.
struct QuantizedLinear {
  int32_t out_features = 0;
  int32_t in_features = 0;
  int32_t bits = 0;
  std::vector<uint8_t> codes;        // storage layout, weight_row_bytes(bits, in_features) bytes per row
  std::vector<int32_t> zero_points;  // [out][groups], in [0, 2^bits − 1]
  std::vector<Dyadic> scales;        // [out][groups]
  int32_t group_size = 0;            // G: 0 = per row; else G divides in_features (G = in is per row too)
};

// Columns per weight group (in_features for a per-row weight) and groups per row.
constexpr inline int32_t weight_group_size(const QuantizedLinear& w) {
  return w.group_size > 0 ? w.group_size : w.in_features;
}
constexpr inline int32_t weight_groups(const QuantizedLinear& w) {
  return w.group_size > 0 && w.in_features > 0 ? w.in_features / w.group_size : 1;
}
// True when the weight has more than one scale per row (group_size set and smaller than in_features).
constexpr inline bool weight_per_group(const QuantizedLinear& w) {
  return w.group_size > 0 && w.group_size != w.in_features;
}

// True when a weight of `bits` bits is stored two codes per byte.
constexpr inline bool weight_codes_packed(int32_t bits) { return bits <= 4; }

// Bytes of one stored weight row: ⌈in/2⌉ for packed codes, else in.
constexpr inline size_t weight_row_bytes(int32_t bits, int32_t in_features) {
  const size_t in = in_features < 0 ? 0 : static_cast<size_t>(in_features);
  return weight_codes_packed(bits) ? in / 2 + in % 2 : in;
}
inline size_t weight_row_bytes(const QuantizedLinear& w) { return weight_row_bytes(w.bits, w.in_features); }

// The code of weight (row, col). Code outside kernels/ (exporters, inspection, tests) reads codes through this
// accessor or unpack_weight_row() (kernels/weight_codes.h), never by indexing `codes`.
inline uint8_t weight_code(const QuantizedLinear& w, int32_t row, int32_t col) {
  const size_t row_start = static_cast<size_t>(row) * weight_row_bytes(w);
  if (!weight_codes_packed(w.bits)) return w.codes[row_start + static_cast<size_t>(col)];
  const uint8_t byte = w.codes[row_start + static_cast<size_t>(col) / 2];
  return col % 2 == 0 ? static_cast<uint8_t>(byte & 0x0F) : static_cast<uint8_t>(byte >> 4);
}

// Per-channel integer vector with one common exponent: real value[c] ≈ mantissa[c] / 2^exponent.
// Used for RMSNorm γ (§5.2, 16-bit mantissas) and DI-SwiGLU's a_c ≈ 1/α_c (§6.2, 24-bit mantissas).
struct ChannelVector {
  std::vector<int64_t> mantissa;
  int32_t exponent = 0;
};

// The activation sites of a block whose asymmetric DI_REQUANT can be clipped (docs/integer-semantics.md
// "## Clipped DI_REQUANT"; the order of calibration/act_sites.h): DI-Norm outputs (attn_in, ffn_in), the per-(token,
// head) q, k, v codes, the attention output (attn_out) and DI-SwiGLU's output (down_in).
enum ActClipSite { kClipAttnIn = 0, kClipQ, kClipK, kClipV, kClipAttnOut, kClipFfnIn, kClipDownIn, kNumClipSites };
const char* act_clip_site_name(int site);
// The sites that may carry TRIP factors: the inputs of the seven linears (attn_in, attn_out, ffn_in, down_in).
constexpr inline bool trip_capable_site(int site) {
  return site == kClipAttnIn || site == kClipAttnOut || site == kClipFfnIn || site == kClipDownIn;
}

struct QuantizedLayer {
  ChannelVector attn_norm;  // γ1 (FSBR site 1 folded in)
  QuantizedLinear q_proj;   // 1/√d folded into its rows (§7.4)
  QuantizedLinear k_proj;
  QuantizedLinear v_proj;
  QuantizedLinear o_proj;
  ChannelVector ffn_norm;   // γ2 (site 2 folded in)
  QuantizedLinear gate_proj;
  QuantizedLinear up_proj;
  QuantizedLinear down_proj;
  ChannelVector swiglu_inv_alpha;  // a_c ≈ 2^exponent / α_c, the FSBR site-5 divisor kept at run time
  Dyadic softmax_clip;             // c as a dyadic; m == 0 means "no clipping"
  std::array<RequantClip, kNumClipSites> act_clip{};  // per-site clip ratio; all m == 0 (default): no clipping
  bool has_act_clip() const {
    for (const RequantClip& c : act_clip)
      if (c.enabled()) return true;
    return false;
  }
  // TRIP channel factors (docs/integer-semantics.md "## TRIP channel factors"): per site (indexed like act_clip;
  // only attn_in, attn_out, ffn_in, down_in may have them) α_c ∈ [0, trip_max_shift] per channel; empty = off.
  int32_t trip_max_shift = 0;
  std::array<std::vector<int8_t>, kNumClipSites> trip_alpha{};
  TripFactors trip(int site) const {
    if (trip_alpha[site].empty()) return TripFactors{};
    return TripFactors{std::span<const int8_t>(trip_alpha[site]), trip_max_shift};
  }
  bool has_trip() const {
    for (const std::vector<int8_t>& a : trip_alpha)
      if (!a.empty()) return true;
    return false;
  }
};

struct QuantizedModel {
  ModelShape shape;
  IntegerSettings settings;
  Dyadic norm_eps;  // RMSNorm ε as a dyadic (§5.2)

  // Embedding: symmetric rows, one dyadic per vocabulary row (§7.3); codes are int16 (int8 range when
  // settings.embed_bits == 8).
  std::vector<int16_t> embed_codes;  // [vocab][hidden]
  std::vector<Dyadic> embed_scales;  // [vocab]

  std::vector<QuantizedLayer> layers;
  ChannelVector final_norm;
  QuantizedLinear lm_head;  // settings.head_bits wide

  // RoPE tables, Q1.14: cos/sin(p·θ_i)·2^14, [max_positions][head_dim/2] (§7.4), built offline in float64.
  int32_t rope_frac_bits = 14;
  std::vector<int16_t> rope_cos;
  std::vector<int16_t> rope_sin;

  // Online Walsh–Hadamard transforms (docs/integer-semantics.md "## Walsh–Hadamard transform"), H = the matrix of
  // plan_hadamard(n) (kernels/reference/hadamard.h), a pure function of n: of down_proj's input (n = C_f; 1/√g is
  // folded into down_proj's row scales) and of every q and k head after RoPE (n = d; 1/g into q_proj's row scales).
  bool hadamard_down = false;
  bool hadamard_qk = false;

  // Per-group activations (docs/integer-semantics.md "## Per-group activations"): G > 0 gives the inputs of the seven
  // block linears (attn_in, attn_out, ffn_in, down_in) one zero point and dyadic per (token, G channels); 0 = per
  // token. The LM head input and q, k, v stay as they are.
  int32_t act_group_size = 0;
};

}  // namespace illm
