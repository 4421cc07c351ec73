// Calibrated float model → integer model. See integerize.h.
#include "calibration/integerize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "formats/rope_tables.h"

namespace illm {
namespace {

constexpr int kNormMantissaBits = 16;    // γ: 16-bit mantissas, common exponent (§9.1 DI-Norm)
constexpr int kInvAlphaMantissaBits = 24;  // a_c ≈ 2^k_a/α_c: 24-bit mantissas (§9.1 DI-SwiGLU)

// Round half away from zero, as every rounding of the integer side (§1.2).
int64_t round_away(double x) { return static_cast<int64_t>(std::llround(x)); }

QuantizedLinear linear_from_calibrated(const calib::CalibratedLinear& in, int mantissa_bits, double scale_factor,
                                       const std::string& what) {
  if (in.group_size != in.in_features) {
    throw Error(what + ": per-group weight scales (group_size " + std::to_string(in.group_size) +
                ") are a fake-quant-only deviation; the integer path needs per-channel weights");
  }
  QuantizedLinear out;
  out.out_features = in.out_features;
  out.in_features = in.in_features;
  out.bits = in.bits;
  out.codes = in.codes;
  out.zero_points = in.zero_points;
  out.scales.reserve(in.scales.size());
  for (int32_t r = 0; r < in.out_features; ++r) {
    const double s = static_cast<double>(in.scales[r]) * scale_factor;
    out.scales.push_back(dyadic_from_double(s, mantissa_bits, (what + " row scale").c_str()));
  }
  return out;
}

// Asymmetric per-row RTN of a float matrix [rows][cols] (the LM head, §7.6), ranges widened to include 0.
QuantizedLinear quantize_rows_asymmetric(const std::vector<float>& w, int32_t rows, int32_t cols, int bits,
                                         int mantissa_bits) {
  QuantizedLinear out;
  out.out_features = rows;
  out.in_features = cols;
  out.bits = bits;
  out.codes.resize(static_cast<size_t>(rows) * cols);
  out.zero_points.resize(rows);
  out.scales.resize(rows);
  const int64_t q_max = (int64_t{1} << bits) - 1;
  for (int32_t r = 0; r < rows; ++r) {
    const float* row = w.data() + static_cast<size_t>(r) * cols;
    double lo = 0, hi = 0;
    for (int32_t c = 0; c < cols; ++c) {
      lo = std::min(lo, static_cast<double>(row[c]));
      hi = std::max(hi, static_cast<double>(row[c]));
    }
    double s = (hi - lo) / static_cast<double>(q_max);
    if (!(s > 0)) s = 1.0;  // an all-zero row: any scale reproduces it
    const int64_t z = std::clamp<int64_t>(round_away(-lo / s), 0, q_max);
    for (int32_t c = 0; c < cols; ++c) {
      out.codes[static_cast<size_t>(r) * cols + c] =
          static_cast<uint8_t>(std::clamp<int64_t>(round_away(row[c] / s) + z, 0, q_max));
    }
    out.zero_points[r] = static_cast<int32_t>(z);
    out.scales[r] = dyadic_from_double(s, mantissa_bits, "lm_head row scale");
  }
  return out;
}

}  // namespace

IntegerSettings integer_settings_for(int w_bits, int a_bits, bool paper_conformance) {
  IntegerSettings s;
  s.w_bits = w_bits;
  s.a_bits = a_bits;
  return paper_conformance ? paper_conformance_settings(s) : s;
}

Dyadic dyadic_from_double(double s, int mantissa_bits, const char* what) {
  if (!std::isfinite(s) || s <= 0) throw Error(std::string(what) + ": scale " + std::to_string(s) + " is not a positive finite number");
  int exponent = 0;
  std::frexp(s, &exponent);  // s = f·2^exponent, f ∈ [0.5, 1) ⇒ ⌊log2 s⌋ = exponent − 1
  int32_t k = mantissa_bits - 1 - (exponent - 1);
  int64_t m = round_away(std::ldexp(s, k));
  if (m == (int64_t{1} << mantissa_bits)) {
    m >>= 1;
    k -= 1;
  }
  return Dyadic{m, k};
}

ChannelVector channel_vector_from_floats(const std::vector<float>& values, int mantissa_bits, const char* what) {
  double max_abs = 0;
  for (float v : values) {
    if (!std::isfinite(v)) throw Error(std::string(what) + ": non-finite value");
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
  }
  ChannelVector out;
  if (max_abs == 0) {
    out.mantissa.assign(values.size(), 0);
    return out;
  }
  int exponent = 0;
  std::frexp(max_abs, &exponent);  // max_abs < 2^exponent
  out.exponent = mantissa_bits - exponent;  // ⇒ max |mantissa| ≤ 2^mantissa_bits (one rounding step may touch it)
  if (std::ldexp(max_abs, out.exponent) >= std::ldexp(1.0, mantissa_bits) - 0.5) out.exponent -= 1;
  out.mantissa.reserve(values.size());
  for (float v : values) out.mantissa.push_back(round_away(std::ldexp(static_cast<double>(v), out.exponent)));
  return out;
}

void require_integer_path(const Recipe& r, const std::string& source) {
  auto refuse = [&](const char* key, const char* what) {
    throw Error("recipe " + source + ": key \"" + key + "\": " + what +
                " has no integer operator yet (fake-quant simulation only); the integer model cannot be built");
  };
  if (r.w_granularity == WeightGranularity::kPerGroup) refuse("w_granularity", "per-group weight scales");
  if (r.hadamard_down) refuse("hadamard_down", "the online down_proj Hadamard");
  if (r.hadamard_qk) refuse("hadamard_qk", "the online q/k Hadamard");
  if (r.act_clip != 1.0 || r.act_clip_search) refuse("act_clip", "activation clipping");
  if (r.trip_shifts > 0) refuse("trip_shifts", "TRIP channel factors");
}

QuantizedModel integerize(const calib::CalibratedModel& cm, const IntegerSettings& settings) {
  const char* fake_only = " has no integer operator yet (fake-quant simulation only)";
  if (cm.hadamard_down) throw Error(std::string("integerize: the online down_proj Hadamard") + fake_only);
  if (cm.hadamard_qk) throw Error(std::string("integerize: the online q/k Hadamard") + fake_only);
  for (size_t l = 0; l < cm.layers.size(); ++l) {
    for (double r : cm.layers[l].act_clip_ratios)
      if (r != 1.0) throw Error("integerize: layer " + std::to_string(l) + " activation clipping" + fake_only);
    if (!cm.layers[l].trip_shifts.empty())
      throw Error("integerize: layer " + std::to_string(l) + " TRIP channel factors" + fake_only);
  }
  QuantizedModel qm;
  qm.shape.hidden = cm.hidden;
  qm.shape.intermediate = cm.intermediate;
  qm.shape.n_layers = cm.n_layers;
  qm.shape.n_heads = cm.n_heads;
  qm.shape.n_kv_heads = cm.n_kv_heads;
  qm.shape.head_dim = cm.head_dim;
  qm.shape.vocab = cm.vocab;
  qm.shape.max_positions = cm.max_positions;
  qm.shape.bos_id = static_cast<int32_t>(cm.bos_id);
  qm.shape.eos_id = static_cast<int32_t>(cm.eos_id);
  qm.settings = settings;
  qm.settings.swiglu_in_bits = cm.swiglu_in_bits;
  const int bm = settings.mantissa_bits;
  qm.norm_eps = dyadic_from_double(cm.rms_norm_eps, bm, "rms_norm_eps");

  // Embedding: symmetric rows (§7.3), int16 by default.
  const int64_t embed_q = (int64_t{1} << (settings.embed_bits - 1)) - 1;
  qm.embed_codes.resize(static_cast<size_t>(cm.vocab) * cm.hidden);
  qm.embed_scales.resize(cm.vocab);
  for (int32_t r = 0; r < cm.vocab; ++r) {
    const float* row = cm.embed.data() + static_cast<size_t>(r) * cm.hidden;
    double max_abs = 0;
    for (int32_t c = 0; c < cm.hidden; ++c) max_abs = std::max(max_abs, std::fabs(static_cast<double>(row[c])));
    const double s = max_abs > 0 ? max_abs / static_cast<double>(embed_q) : 1.0;
    const Dyadic d = dyadic_from_double(s, bm, "embedding row scale");
    // Codes are computed with the emitted dyadic scale so that codes and scale agree (as DI_REQUANT does).
    const double s_dyadic = std::ldexp(static_cast<double>(d.m), -d.k);
    for (int32_t c = 0; c < cm.hidden; ++c) {
      qm.embed_codes[static_cast<size_t>(r) * cm.hidden + c] =
          static_cast<int16_t>(std::clamp<int64_t>(round_away(row[c] / s_dyadic), -embed_q, embed_q));
    }
    qm.embed_scales[r] = d;
  }

  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(cm.head_dim));
  qm.layers.reserve(cm.layers.size());
  for (size_t l = 0; l < cm.layers.size(); ++l) {
    const calib::CalibratedLayer& in = cm.layers[l];
    const std::string p = "layer " + std::to_string(l) + " ";
    QuantizedLayer out;
    out.attn_norm = channel_vector_from_floats(in.attn_norm, kNormMantissaBits, "attn_norm");
    out.ffn_norm = channel_vector_from_floats(in.ffn_norm, kNormMantissaBits, "ffn_norm");
    out.q_proj = linear_from_calibrated(in.q_proj, bm, inv_sqrt_d, p + "q_proj");  // 1/√d folded (§7.4)
    out.k_proj = linear_from_calibrated(in.k_proj, bm, 1.0, p + "k_proj");
    out.v_proj = linear_from_calibrated(in.v_proj, bm, 1.0, p + "v_proj");
    out.o_proj = linear_from_calibrated(in.o_proj, bm, 1.0, p + "o_proj");
    out.gate_proj = linear_from_calibrated(in.gate_proj, bm, 1.0, p + "gate_proj");
    out.up_proj = linear_from_calibrated(in.up_proj, bm, 1.0, p + "up_proj");
    out.down_proj = linear_from_calibrated(in.down_proj, bm, 1.0, p + "down_proj");
    std::vector<float> inv_alpha(in.swiglu_alpha.size());
    for (size_t c = 0; c < inv_alpha.size(); ++c) {
      if (!(in.swiglu_alpha[c] > 0)) throw Error(p + "swiglu_alpha[" + std::to_string(c) + "] is not positive");
      inv_alpha[c] = 1.0f / in.swiglu_alpha[c];
    }
    out.swiglu_inv_alpha = channel_vector_from_floats(inv_alpha, kInvAlphaMantissaBits, "swiglu 1/alpha");
    out.softmax_clip = in.softmax_clip ? dyadic_from_double(*in.softmax_clip, bm, "softmax clip c") : Dyadic{0, 0};
    qm.layers.push_back(std::move(out));
  }
  qm.final_norm = channel_vector_from_floats(cm.final_norm, kNormMantissaBits, "final_norm");
  qm.lm_head = quantize_rows_asymmetric(cm.lm_head, cm.vocab, cm.hidden, settings.head_bits, bm);

  const RopeTables tables = build_rope_tables(cm.rope_inv_freq, cm.max_positions, 14);
  qm.rope_frac_bits = tables.frac_bits;
  qm.rope_cos = tables.cos;
  qm.rope_sin = tables.sin;
  return qm;
}

}  // namespace illm
