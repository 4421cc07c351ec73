// Calibrated float model → integer model. See integerize.h.
#include "calibration/integerize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "kernels/reference/hadamard.h"
#include "kernels/weight_codes.h"
#include "formats/rope_tables.h"

namespace illm {
namespace {

constexpr int kNormMantissaBits = 16;    // γ: 16-bit mantissas, common exponent (§9.1 DI-Norm)
constexpr int kInvAlphaMantissaBits = 24;  // a_c ≈ 2^k_a/α_c: 24-bit mantissas (§9.1 DI-SwiGLU)
constexpr int kClipMantissaBits = 16;      // activation clip ratios off the 1/16 grid

// Round half away from zero, as every rounding of the integer side (§1.2).
int64_t round_away(double x) { return static_cast<int64_t>(std::llround(x)); }

// `in` by value: integerize_layer moves the codes in (they are the largest part of a layer).
QuantizedLinear linear_from_calibrated(calib::CalibratedLinear in, int mantissa_bits, double scale_factor,
                                       const std::string& what) {
  QuantizedLinear out;
  out.out_features = in.out_features;
  out.in_features = in.in_features;
  out.bits = in.bits;
  // Per-group scales: one dyadic per (row, group), [out][in/G] (docs/integer-semantics.md "## Per-group DI-MatMul");
  // G = in_features is the per-row weight (group_size 0, the file unchanged).
  out.group_size = in.group_size == in.in_features ? 0 : in.group_size;
  if (const auto problem = weight_group_problem(out)) throw Error(what + ": " + *problem);
  out.codes = pack_weight_codes(in.bits, in.out_features, in.in_features, in.codes, what.c_str());  // storage layout
  in.codes = {};
  out.zero_points = std::move(in.zero_points);
  out.scales.reserve(in.scales.size());
  const std::string scale_what = what + (out.group_size > 0 ? " group scale" : " row scale");
  for (const float scale : in.scales) {
    const double s = static_cast<double>(scale) * scale_factor;
    out.scales.push_back(dyadic_from_double(s, mantissa_bits, scale_what.c_str()));
  }
  return out;
}

// Asymmetric RTN of float rows [first, first + count) of the LM head (§7.6), per row or per group of out.group_size
// columns, each range widened to include 0; with `gptq`, the codes are GPTQ's on the same grids instead. Each row's
// codes go into out.codes in the storage layout (packed for bits <= 4).
void quantize_rows_asymmetric(const float* w, int32_t first, int32_t count, int mantissa_bits, QuantizedLinear& out,
                              const calib::GptqRowRounder* gptq) {
  const int32_t cols = out.in_features;
  const int32_t group = out.group_size > 0 ? out.group_size : cols;
  const int32_t groups = cols / group;
  const int64_t q_max = (int64_t{1} << out.bits) - 1;
  const size_t row_bytes = weight_row_bytes(out);
  const size_t grids = static_cast<size_t>(count) * groups;
  std::vector<double> scales(grids);
  std::vector<int64_t> zeros(grids);
  for (size_t i = 0; i < grids; ++i) {
    const float* values = w + i * group;  // group i of the chunk: row i / groups, columns (i % groups)·G …
    double lo = 0, hi = 0;
    for (int32_t c = 0; c < group; ++c) {
      lo = std::min(lo, static_cast<double>(values[c]));
      hi = std::max(hi, static_cast<double>(values[c]));
    }
    double s = (hi - lo) / static_cast<double>(q_max);
    if (!(s > 0)) s = 1.0;  // an all-zero group: any scale reproduces it
    scales[i] = s;
    zeros[i] = std::clamp<int64_t>(round_away(-lo / s), 0, q_max);
  }
  std::vector<uint8_t> codes(static_cast<size_t>(count) * cols);  // one code per byte
  if (gptq) {
    if (gptq->in_features() != cols)
      throw Error("lm_head: the GPTQ Hessian is for " + std::to_string(gptq->in_features()) + " inputs, the head has " +
                  std::to_string(cols));
    gptq->round_rows(w, count, group, scales.data(), zeros.data(), q_max, codes.data());
  } else {
    for (size_t i = 0; i < codes.size(); ++i) {
      const size_t g = i / static_cast<size_t>(group);
      codes[i] = static_cast<uint8_t>(std::clamp<int64_t>(round_away(w[i] / scales[g]) + zeros[g], 0, q_max));
    }
  }
  for (int32_t k = 0; k < count; ++k) {
    const size_t r = static_cast<size_t>(first + k);
    for (int32_t g = 0; g < groups; ++g) {
      const size_t i = static_cast<size_t>(k) * groups + g;
      out.zero_points[r * groups + g] = static_cast<int32_t>(zeros[i]);
      out.scales[r * groups + g] = dyadic_from_double(scales[i], mantissa_bits, "lm_head row scale");
    }
    const auto row = codes.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(k) * cols);
    const std::vector<uint8_t> stored = pack_weight_codes(out.bits, 1, cols, std::vector<uint8_t>(row, row + cols), "lm_head");
    std::copy(stored.begin(), stored.end(), out.codes.begin() + static_cast<ptrdiff_t>(r * row_bytes));
  }
}

void check_rows(const QuantizedModel& model, int32_t first, int32_t count, const char* what) {
  if (first < 0 || count < 0 || static_cast<int64_t>(first) + count > model.shape.vocab)
    throw Error(std::string(what) + ": rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside the vocabulary of " + std::to_string(model.shape.vocab));
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
  // Every lever has an integer operator; one combination does not: TRIP refines down_proj's input per channel,
  // the online Hadamard mixes those channels before that requantization (the refinement would have no channels).
  if (r.trip_shifts > 0 && r.hadamard_down)
    throw Error("recipe " + source + ": keys \"trip_shifts\" and \"hadamard_down\": TRIP channel factors at the "
                "down_proj input and the online down_proj Hadamard cannot be combined; the integer model cannot be "
                "built (drop one of them)");
}

QuantizedModel integer_model_frame(const calib::CalibratedModel& cm, const IntegerSettings& settings) {
  QuantizedModel qm;
  qm.hadamard_down = cm.hadamard_down;
  qm.hadamard_qk = cm.hadamard_qk;
  qm.act_group_size = cm.act_group_size;
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
  qm.norm_eps = dyadic_from_double(cm.rms_norm_eps, settings.mantissa_bits, "rms_norm_eps");
  const size_t table = static_cast<size_t>(cm.vocab) * static_cast<size_t>(cm.hidden);
  qm.embed_codes.resize(table);
  qm.embed_scales.resize(cm.vocab);
  qm.lm_head.out_features = cm.vocab;
  qm.lm_head.in_features = cm.hidden;
  qm.lm_head.bits = settings.head_bits;
  qm.lm_head.codes.resize(static_cast<size_t>(cm.vocab) * weight_row_bytes(settings.head_bits, cm.hidden));
  if (cm.head_group_size < 0 || (cm.head_group_size > 0 && cm.hidden % cm.head_group_size != 0))
    throw Error("integerize: LM head group size " + std::to_string(cm.head_group_size) + " does not divide hidden " +
                std::to_string(cm.hidden));
  qm.lm_head.group_size = cm.head_group_size;  // 0: per row
  const size_t head_grids = static_cast<size_t>(cm.vocab) * (cm.head_group_size > 0 ? cm.hidden / cm.head_group_size : 1);
  qm.lm_head.zero_points.resize(head_grids);
  qm.lm_head.scales.resize(head_grids);
  qm.settings.head_in_bits = cm.head_in_bits;
  qm.settings.qkv_bits = cm.qkv_bits;
  const RopeTables tables = build_rope_tables(cm.rope_inv_freq, cm.max_positions, 14);
  qm.rope_frac_bits = tables.frac_bits;
  qm.rope_cos = tables.cos;
  qm.rope_sin = tables.sin;
  return qm;
}

void integerize_embedding_rows(QuantizedModel& qm, int32_t first, int32_t count, const float* rows) {
  check_rows(qm, first, count, "embedding");
  // Symmetric rows (§7.3), int16 by default.
  const int32_t hidden = qm.shape.hidden;
  const int64_t embed_q = (int64_t{1} << (qm.settings.embed_bits - 1)) - 1;
  for (int32_t k = 0; k < count; ++k) {
    const int32_t r = first + k;
    const float* row = rows + static_cast<size_t>(k) * hidden;
    double max_abs = 0;
    for (int32_t c = 0; c < hidden; ++c) max_abs = std::max(max_abs, std::fabs(static_cast<double>(row[c])));
    const double s = max_abs > 0 ? max_abs / static_cast<double>(embed_q) : 1.0;
    const Dyadic d = dyadic_from_double(s, qm.settings.mantissa_bits, "embedding row scale");
    // Codes are computed with the emitted dyadic scale so that codes and scale agree (as DI_REQUANT does).
    const double s_dyadic = std::ldexp(static_cast<double>(d.m), -d.k);
    for (int32_t c = 0; c < hidden; ++c) {
      qm.embed_codes[static_cast<size_t>(r) * hidden + c] =
          static_cast<int16_t>(std::clamp<int64_t>(round_away(row[c] / s_dyadic), -embed_q, embed_q));
    }
    qm.embed_scales[r] = d;
  }
}

void integerize_head_rows(QuantizedModel& qm, int32_t first, int32_t count, const float* rows,
                          const calib::GptqRowRounder* gptq) {
  check_rows(qm, first, count, "lm_head");
  quantize_rows_asymmetric(rows, first, count, qm.settings.mantissa_bits, qm.lm_head, gptq);
}

std::optional<calib::GptqRowRounder> head_gptq_rounder(const calib::CalibratedModel& frame,
                                                       const std::vector<double>& head_hessian) {
  if (head_hessian.empty()) return std::nullopt;
  return calib::GptqRowRounder(head_hessian, frame.hidden, frame.head_gptq_damp, frame.head_gptq_act_order);
}

void integerize_final_norm(QuantizedModel& qm, const std::vector<float>& gain) {
  qm.final_norm = channel_vector_from_floats(gain, kNormMantissaBits, "final_norm");
}

RequantClip requant_clip_from_ratio(double ratio, const std::string& what) {
  if (!(ratio > 0 && ratio <= 1)) throw Error("integerize: " + what + " clip ratio " + std::to_string(ratio) + " outside (0, 1]");
  if (ratio == 1) return RequantClip{};  // no clipping: the plain DI_REQUANT
  const double sixteenths = ratio * 16;
  if (sixteenths == std::floor(sixteenths)) return RequantClip{static_cast<int64_t>(sixteenths), 4};  // the grid
  const int64_t m = std::llround(std::ldexp(ratio, kClipMantissaBits));
  if (m < 1) throw Error("integerize: " + what + " clip ratio " + std::to_string(ratio) + " below 2^-16");
  return RequantClip{m, kClipMantissaBits};
}

QuantizedLayer integerize_layer(calib::CalibratedLayer in, const IntegerSettings& settings, int32_t head_dim,
                                OnlineHadamards hadamards, size_t l, int32_t trip_max_shift) {
  const int bm = settings.mantissa_bits;
  // The transforms' gains stay out of the integer data path: the WHT of q and k multiplies Q·Kᵀ by g, the one of
  // down_proj's input multiplies it by √g (H·Hᵀ = g·I).
  const double qk_gain = hadamards.qk ? static_cast<double>(plan_hadamard(head_dim).gain2) : 1.0;
  const double down_gain = hadamards.down ? static_cast<double>(plan_hadamard(in.down_proj.in_features).gain2) : 1.0;
  const double q_scale = 1.0 / (std::sqrt(static_cast<double>(head_dim)) * qk_gain);
  const std::string p = "layer " + std::to_string(l) + " ";
  QuantizedLayer out;
  out.attn_norm = channel_vector_from_floats(in.attn_norm, kNormMantissaBits, "attn_norm");
  out.ffn_norm = channel_vector_from_floats(in.ffn_norm, kNormMantissaBits, "ffn_norm");
  out.q_proj = linear_from_calibrated(std::move(in.q_proj), bm, q_scale, p + "q_proj");  // 1/√d (§7.4), 1/g folded
  out.k_proj = linear_from_calibrated(std::move(in.k_proj), bm, 1.0, p + "k_proj");
  out.v_proj = linear_from_calibrated(std::move(in.v_proj), bm, 1.0, p + "v_proj");
  out.o_proj = linear_from_calibrated(std::move(in.o_proj), bm, 1.0, p + "o_proj");
  out.gate_proj = linear_from_calibrated(std::move(in.gate_proj), bm, 1.0, p + "gate_proj");
  out.up_proj = linear_from_calibrated(std::move(in.up_proj), bm, 1.0, p + "up_proj");
  out.down_proj = linear_from_calibrated(std::move(in.down_proj), bm, 1.0 / std::sqrt(down_gain), p + "down_proj");
  std::vector<float> inv_alpha(in.swiglu_alpha.size());
  for (size_t c = 0; c < inv_alpha.size(); ++c) {
    if (!(in.swiglu_alpha[c] > 0)) throw Error(p + "swiglu_alpha[" + std::to_string(c) + "] is not positive");
    inv_alpha[c] = 1.0f / in.swiglu_alpha[c];
  }
  out.swiglu_inv_alpha = channel_vector_from_floats(inv_alpha, kInvAlphaMantissaBits, "swiglu 1/alpha");
  out.softmax_clip = in.softmax_clip ? dyadic_from_double(*in.softmax_clip, bm, "softmax clip c") : Dyadic{0, 0};
  if (!in.act_clip_ratios.empty()) {
    if (in.act_clip_ratios.size() != static_cast<size_t>(kNumClipSites))
      throw Error("integerize: " + p + "has " + std::to_string(in.act_clip_ratios.size()) +
                  " activation clip ratios, expected " + std::to_string(kNumClipSites));
    for (int site = 0; site < kNumClipSites; ++site)
      out.act_clip[site] = requant_clip_from_ratio(in.act_clip_ratios[site], p + act_clip_site_name(site));
  }
  if (!in.trip_shifts.empty()) {
    if (in.trip_shifts.size() != static_cast<size_t>(kNumClipSites))
      throw Error("integerize: " + p + "has TRIP exponents for " + std::to_string(in.trip_shifts.size()) +
                  " sites, expected " + std::to_string(kNumClipSites));
    if (trip_max_shift < 1 || trip_max_shift > kMaxTripShift)
      throw Error("integerize: " + p + "has TRIP exponents but the TRIP max shift is " +
                  std::to_string(trip_max_shift) + " (expected 1..8)");
    if (hadamards.down && !in.trip_shifts[kClipDownIn].empty())
      throw Error("integerize: " + p + "has TRIP exponents at down_in, but the online down_proj Hadamard mixes those "
                  "channels before their requantization (TRIP and hadamard_down cannot be combined)");
    out.trip_max_shift = trip_max_shift;
    for (int site = 0; site < kNumClipSites; ++site) out.trip_alpha[site] = std::move(in.trip_shifts[site]);
  }
  return out;
}

QuantizedModel integerize(const calib::CalibratedModel& cm, const IntegerSettings& settings) {
  QuantizedModel qm = integer_model_frame(cm, settings);
  integerize_embedding_rows(qm, 0, cm.vocab, cm.embed.data());
  qm.layers.reserve(cm.layers.size());
  for (size_t l = 0; l < cm.layers.size(); ++l)
    qm.layers.push_back(integerize_layer(cm.layers[l], settings, cm.head_dim,
                                         OnlineHadamards{cm.hadamard_down, cm.hadamard_qk}, l, cm.trip_max_shift));
  integerize_final_norm(qm, cm.final_norm);
  const std::optional<calib::GptqRowRounder> head_gptq = head_gptq_rounder(cm, cm.head_hessian);
  integerize_head_rows(qm, 0, cm.vocab, cm.lm_head.data(), head_gptq ? &*head_gptq : nullptr);
  return qm;
}

}  // namespace illm
