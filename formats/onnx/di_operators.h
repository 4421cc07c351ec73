#pragma once
// The DI operators of kernels/ (DI_REQUANT, DI-Norm, DI-Exp, DI-ClippedSoftmax, DI-SwiGLU, the residual add, RoPE,
// the attention alignments) as ONNX subgraphs on int64 tensors, bit-exact with the kernels for every input the
// kernels accept (docs/onnx-export.md maps them operator by operator). Rows are the last axis; per-row values
// (zero points, dyadic mantissas and exponents) have the row's leading shape with a trailing 1.
#include <cstdint>
#include <optional>

#include "formats/onnx/integer_primitives.h"
#include "kernels/quantized_model.h"

namespace illm::formats::onnx_export {

// A per-row dyadic scale m / 2^k.
struct RowScale {
  Value m, k;
};

// Row-quantized codes (int64 values): real value = (m / 2^k)·(code − zero_point). With group_size G > 0 (per-group
// activations) the codes are [rows][cols/G][G] and the zero points and scales [rows][cols/G][1], one per group.
struct Codes {
  Value codes;
  Value zero_point;
  RowScale scale;
  int64_t group_size = 0;
};

// What DI-Exp derives from one input scale per row (kernels/reference/di_exp.h DiExpFrame), plus |t|.
struct ExpFrame {
  Value promote;  // P
  Value abs_t;    // |t| = −t
};

class DiOperators {
 public:
  DiOperators(IntegerPrimitives& primitives, const IntegerSettings& settings);
  IntegerPrimitives& p;
  GraphBuilder& g;

  // DI_REQUANT (asymmetric, unsigned codes) and DI_REQUANT_SYM (symmetric, signed codes) of each row of v
  // (|v| < 2^value_bits, value_bits <= 62) with input scale `in` (1 <= m_in < 2^m_in_bits, m_in_bits <= 31). Throws
  // illm::Error when the setting needs a negative shift in the code multiplier's division
  // ((2^b_m − 1)·Q·2^(61 − out_bits) < 2^62).
  // `clip` (asymmetric only): the clipped DI_REQUANT (docs/integer-semantics.md "## Clipped DI_REQUANT"), a constant
  // of the graph; off adds no node. `trip` (asymmetric only): TRIP channel factors of the row's channels
  // (docs/integer-semantics.md "## TRIP channel factors"), constants of the graph: out_bits + E bit codes with zero
  // point z·2^E and scale (m_y, k_y + E); off adds no node.
  Codes requant(const Value& v, const RowScale& in, int m_in_bits, int out_bits, int value_bits = 62,
                RequantClip clip = {}, TripFactors trip = {});
  Codes requant_symmetric(const Value& v, const RowScale& in, int m_in_bits, int out_bits, int value_bits = 62);

  // DI-Norm per token (kernels di_norm_row) of int16-range residual codes h [rows][C] with scale `h_scale`
  // (m < 2^31); C < 2^14.
  Codes norm(const Value& h, const RowScale& h_scale, const ChannelVector& gamma, Dyadic eps, int out_bits,
             RequantClip clip = {}, TripFactors trip = {});

  // DI-Exp: the frame of a per-row scale (1 <= m < 2^40), the promotion x·2^P (or rshr(x, −P)) and E(x) for
  // promoted x <= 0.
  ExpFrame exp_frame(const RowScale& scale);
  Value promote(const Value& x, const ExpFrame& frame);
  Value exp(const Value& promoted_x, const ExpFrame& frame);

  // DI-ClippedSoftmax of rows of aligned logits (|v| < 2^55) where `mask` marks the valid keys (prefix masks, at
  // least one valid key per row; masked keys get probability 0); input scale (m_in < 2^31, k_in) per row;
  // clip.m == 0: no clipping. The key axis may be symbolic (no TopK on it).
  Value clipped_softmax(const Value& logits, const Value& mask, const RowScale& in, Dyadic clip);

  // DI-SwiGLU of gate and up codes (swiglu_in_bits wide) with a_c ≈ 1/α_c, requantized to out_bits.
  Codes swiglu(const Codes& gate, const Codes& up, const ChannelVector& inv_alpha, int out_bits,
               RequantClip clip = {}, TripFactors trip = {});
  // Its products O_c (|O| < 2^46) and their scale (m_in < 2^(b_m + 1)), before the requantization (the online
  // down_proj Hadamard requantizes them symmetrically to 16 bits instead).
  struct Products {
    Value values;
    RowScale scale;
  };
  Products swiglu_products(const Codes& gate, const Codes& up, const ChannelVector& inv_alpha);

  // The fused residual add (kernels residual_add with an aligned accumulator, z_d = 0) → int16-range codes.
  Codes residual_add(const Value& h, const RowScale& h_scale, const Value& delta, const RowScale& delta_scale);

  // RoPE rotation (rotate_half pairing) of x [..][d] with table rows cos/sin broadcastable to [..][d/2].
  Value rope(const Value& x, int64_t head_dim, const Value& cos, const Value& sin, int frac_bits);

  // align_columns (kernels/reference/di_matmul.h) over the valid keys of each query row: m, k [..][1][keys],
  // mask [queries][keys] → μ [..][queries][keys] (masked keys: alignment of shift 0, to be masked by the caller)
  // and the exponent K2 [..][queries][1].
  struct Alignment {
    Value mantissas, exponent;
  };
  Alignment align_prefix(const Value& m, const Value& k, const Value& mask);

  // requantize_heads (kernels/reference/attention.h): values [rows][heads][d] with exponents [rows][heads][1]
  // (|v| < 2^62) → one DI_REQUANT per row over heads·d → codes [rows][heads·d].
  Codes requantize_heads(const Value& values, const Value& exponents, int64_t heads, int64_t head_dim, int out_bits,
                         RequantClip clip = {}, TripFactors trip = {});

 private:
  struct Range {
    Value lo, hi;  // min(0, min v) and max(0, max v) of each row
  };
  Codes requant_row(const Value& v, const std::optional<Range>& known_range, const RowScale& in, int m_in_bits,
                    int out_bits, bool symmetric, int value_bits, RequantClip clip = {}, TripFactors trip = {});
  Value scale_by_ratio(const Value& x, RequantClip clip);
  Value clip_in_logit_units(Dyadic clip, const RowScale& in);
  Value norm_epsilon_units(Dyadic eps, const Value& k_norm);
  IntegerSettings settings_;
};

}  // namespace illm::formats::onnx_export
