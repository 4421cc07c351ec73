// Model validation: every check names the field. Run once when a model is loaded into an executor.
#include "kernels/model_validation.h"

#include <string>
#include <utility>

#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& reason) {
  throw Error("QuantizedModel: " + field + " " + reason);
}

void check_range(const std::string& field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi)
    fail(field, "= " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void check_linear(const std::string& name, const QuantizedLinear& w, int32_t out, int32_t in, int32_t bits,
                  const char* bits_setting, int32_t input_bits, bool groups_allowed = true) {
  check_range(name + ".out_features", w.out_features, out, out);
  check_range(name + ".in_features", w.in_features, in, in);
  if (w.bits != bits)
    fail(name + ".bits", "= " + std::to_string(w.bits) + " differs from " + bits_setting + " = " + std::to_string(bits));
  if (const auto problem = weight_codes_problem(w)) throw Error("QuantizedModel: " + name + "." + *problem);
  if (const auto problem = weight_group_problem(w)) throw Error("QuantizedModel: " + name + "." + *problem);
  if (!groups_allowed && weight_per_group(w))
    fail(name + ".group_size", "= " + std::to_string(w.group_size) + ": this linear is quantized per row only");
  const size_t scale_count = static_cast<size_t>(out) * static_cast<size_t>(weight_groups(w));
  if (w.zero_points.size() != scale_count)
    fail(name + ".zero_points", "has " + std::to_string(w.zero_points.size()) + " entries, expected " +
                                    std::to_string(scale_count));
  if (w.scales.size() != scale_count)
    fail(name + ".scales", "has " + std::to_string(w.scales.size()) + " entries, expected " +
                               std::to_string(scale_count));
  const int64_t q = (int64_t{1} << bits) - 1;
  for (size_t j = 0; j < scale_count; ++j) {
    check_range(name + ".zero_points[" + std::to_string(j) + "]", w.zero_points[j], 0, q);
    check_range(name + ".scales[" + std::to_string(j) + "].m", w.scales[j].m, 1, (int64_t{1} << 24) - 1);
  }
  // §3.6: the aligned accumulator P' = P · μ (μ < 2^24) must fit int64 for this reduction length.
  const int64_t q_in = (int64_t{1} << input_bits) - 1;
  const unsigned __int128 worst = static_cast<unsigned __int128>(in) * q_in * q << 24;
  if (worst >= (static_cast<unsigned __int128>(1) << 63))
    fail(name, "reduction length " + std::to_string(in) + " can overflow the int64 aligned accumulator");
}

void check_channel_vector(const std::string& name, const ChannelVector& v, int32_t size, int64_t lo, int64_t hi) {
  if (v.mantissa.size() != static_cast<size_t>(size))
    fail(name + ".mantissa", "has " + std::to_string(v.mantissa.size()) + " entries, expected " + std::to_string(size));
  for (size_t c = 0; c < v.mantissa.size(); ++c)
    check_range(name + ".mantissa[" + std::to_string(c) + "]", v.mantissa[c], lo, hi);
  check_range(name + ".exponent", v.exponent, -64, 96);
}

void check_clip(const std::string& name, Dyadic c) {
  check_range(name + ".m", c.m, 0, (int64_t{1} << 40) - 1);
  check_range(name + ".k", c.k, -64, 96);
}

std::string layer_name(size_t l, const char* part) { return "layers[" + std::to_string(l) + "]." + part; }

}  // namespace

const char* act_clip_site_name(int site) {
  static const char* const names[kNumClipSites] = {"attn_in", "q", "k", "v", "attn_out", "ffn_in", "down_in"};
  return site >= 0 && site < kNumClipSites ? names[site] : "?";
}

void validate_model_settings(const ModelShape& s, const IntegerSettings& st) {
  check_range("shape.hidden", s.hidden, 1, 32768);
  check_range("shape.n_heads", s.n_heads, 1, 4096);
  check_range("shape.n_kv_heads", s.n_kv_heads, 1, s.n_heads);
  if (s.n_heads % s.n_kv_heads != 0)
    fail("shape.n_kv_heads", "= " + std::to_string(s.n_kv_heads) + " does not divide n_heads = " +
                                 std::to_string(s.n_heads));
  check_range("shape.head_dim", s.head_dim, 2, 32768);
  if (s.head_dim % 2 != 0) fail("shape.head_dim", "= " + std::to_string(s.head_dim) + " is odd (RoPE pairs channels)");
  check_range("shape.intermediate", s.intermediate, 1, 1 << 20);
  check_range("shape.n_layers", s.n_layers, 0, 4096);
  check_range("shape.vocab", s.vocab, 1, 1 << 24);
  check_range("shape.max_positions", s.max_positions, 1, 1 << 24);

  check_range("settings.w_bits", st.w_bits, 2, 8);
  check_range("settings.a_bits", st.a_bits, 2, 8);
  if (st.qkv_bits != 0) check_range("settings.qkv_bits", st.qkv_bits, 2, 8);  // 0: a_bits
  check_range("settings.mantissa_bits", st.mantissa_bits, 1, 24);
  check_range("settings.softmax_in_bits", st.softmax_in_bits, 1, 16);
  check_range("settings.prob_bits", st.prob_bits, 1, 31);
  check_range("settings.sigmoid_bits", st.sigmoid_bits, 1, 30);
  check_range("settings.swiglu_in_bits", st.swiglu_in_bits, 2, 8);
  check_range("settings.norm_frac_bits", st.norm_frac_bits, 1, 20);
  check_range("settings.head_bits", st.head_bits, 2, 8);
  if (st.head_in_bits != 0) check_range("settings.head_in_bits", st.head_in_bits, 2, 16);  // 0: head_bits
  check_range("settings.embed_bits", st.embed_bits, 2, 16);
  // §3.6 bounds of the attention products (int32): Q·Kᵀ over head_dim, P·V with Σ_j W_j <= 2^(p_out−1).
  // Q, K and V are qkv_code_bits wide.
  const int32_t qkv = qkv_code_bits(st);
  const std::string qkv_name = st.qkv_bits != 0 ? "qkv_bits " : "a_bits ";
  const int64_t q_a = (int64_t{1} << qkv) - 1;
  if (accumulator_kind_for_bound(s.head_dim, q_a, q_a) != AccumulatorKind::kInt32)
    fail("shape.head_dim", "= " + std::to_string(s.head_dim) + " overflows the int32 Q·Kᵀ accumulator at " +
                               qkv_name + std::to_string(qkv));
  if ((int64_t{1} << (st.prob_bits - 1)) * q_a > 2147483647)
    fail("settings.prob_bits", "= " + std::to_string(st.prob_bits) + " overflows the int32 P·V accumulator at " +
                                   qkv_name + std::to_string(qkv));
  check_range("shape.bos_id", s.bos_id, 0, s.vocab - 1);
  check_range("shape.eos_id", s.eos_id, 0, s.vocab - 1);
}

void validate_quantized_model(const QuantizedModel& model) {
  const ModelShape& s = model.shape;
  const IntegerSettings& st = model.settings;
  validate_model_settings(s, st);
  check_range("norm_eps.m", model.norm_eps.m, 0, (int64_t{1} << 40) - 1);
  check_range("norm_eps.k", model.norm_eps.k, -64, 160);

  const size_t table = static_cast<size_t>(s.vocab) * s.hidden;
  if (model.embed_codes.size() != table)
    fail("embed_codes", "has " + std::to_string(model.embed_codes.size()) + " entries, expected vocab·hidden = " +
                            std::to_string(table));
  if (model.embed_scales.size() != static_cast<size_t>(s.vocab))
    fail("embed_scales", "has " + std::to_string(model.embed_scales.size()) + " entries, expected vocab = " +
                             std::to_string(s.vocab));
  const int64_t q_embed = (int64_t{1} << (st.embed_bits - 1)) - 1;
  for (size_t i = 0; i < table; ++i)
    if (model.embed_codes[i] > q_embed || model.embed_codes[i] < -q_embed)
      fail("embed_codes[" + std::to_string(i) + "]", "= " + std::to_string(model.embed_codes[i]) + " outside ±" +
                                                         std::to_string(q_embed));
  for (int32_t v = 0; v < s.vocab; ++v)
    check_range("embed_scales[" + std::to_string(v) + "].m", model.embed_scales[v].m, 1, (int64_t{1} << 31) - 1);

  check_range("rope_frac_bits", model.rope_frac_bits, 1, 14);
  const size_t rope = static_cast<size_t>(s.max_positions) * (s.head_dim / 2);
  if (model.rope_cos.size() != rope)
    fail("rope_cos", "has " + std::to_string(model.rope_cos.size()) + " entries, expected max_positions·head_dim/2 = " +
                         std::to_string(rope));
  if (model.rope_sin.size() != rope)
    fail("rope_sin", "has " + std::to_string(model.rope_sin.size()) + " entries, expected max_positions·head_dim/2 = " +
                         std::to_string(rope));

  if (model.layers.size() != static_cast<size_t>(s.n_layers))
    fail("layers", "has " + std::to_string(model.layers.size()) + " entries, expected n_layers = " +
                       std::to_string(s.n_layers));
  const int32_t q_width = s.n_heads * s.head_dim, kv_width = s.n_kv_heads * s.head_dim;
  // Per-group activations (kernels/activation_groups.h): a width G does not divide ends in a short group; the
  // all-zero group rule of the DI-MatMul needs scale mantissas of >= 2 bits; weight groups of a multiple of G, and
  // no TRIP (that combination has no integer operator).
  const int32_t act_group = model.act_group_size;
  if (act_group != 0) {
    if (!supported_act_group_size(act_group))
      fail("act_group_size", "= " + std::to_string(act_group) + " is not one of 8, 16, 32, 64, 128");
    if (st.mantissa_bits < 2)
      fail("act_group_size", "is set with settings.mantissa_bits = 1 (per-group activations need at least 2)");
  }
  const int64_t gamma_limit = (int64_t{1} << 31) - 1;
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    check_channel_vector(layer_name(l, "attn_norm"), L.attn_norm, s.hidden, -gamma_limit, gamma_limit);
    check_channel_vector(layer_name(l, "ffn_norm"), L.ffn_norm, s.hidden, -gamma_limit, gamma_limit);
    check_channel_vector(layer_name(l, "swiglu_inv_alpha"), L.swiglu_inv_alpha, s.intermediate, 0,
                         (int64_t{1} << 24) - 1);
    // TRIP sites widen their consumer's input codes by trip_extra_bits (kernels/trip_requant.h).
    const int32_t site_channels[kNumClipSites] = {s.hidden, 0, 0, 0, q_width, s.hidden, s.intermediate};
    int32_t input_bits[kNumClipSites];
    for (int site = 0; site < kNumClipSites; ++site) {
      input_bits[site] = st.a_bits;
      if (L.trip_alpha[site].empty()) continue;
      const std::string field = layer_name(l, "trip_alpha[") + act_clip_site_name(site) + "]";
      const std::string name = "QuantizedModel: " + field;
      if (!trip_capable_site(site)) fail(field, "is set, but this site takes no TRIP factors");
      if (site == kClipDownIn && model.hadamard_down)
        fail(field, "is set, but the online down_proj Hadamard mixes these channels before their requantization");
      check_trip_factors(L.trip(site), static_cast<size_t>(site_channels[site]), name.c_str());
      input_bits[site] += trip_extra_bits(L.trip(site));
      if (input_bits[site] > 16)
        fail(field, "widens the codes to " + std::to_string(input_bits[site]) + " bits (at most 16)");
    }
    if (act_group != 0) {
      if (L.has_trip()) fail(layer_name(l, "trip_alpha"), "is set together with act_group_size (not supported)");
      const std::pair<const char*, const QuantizedLinear*> linears[] = {
          {"q_proj", &L.q_proj},       {"k_proj", &L.k_proj}, {"v_proj", &L.v_proj},    {"o_proj", &L.o_proj},
          {"gate_proj", &L.gate_proj}, {"up_proj", &L.up_proj}, {"down_proj", &L.down_proj}};
      for (const auto& [name, w] : linears)  // weight groups must hold whole activation groups
        if (weight_per_group(*w) && weight_group_size(*w) % act_group != 0)
          fail(layer_name(l, name) + ".group_size", "= " + std::to_string(w->group_size) +
                                                     " is not a multiple of act_group_size = " +
                                                     std::to_string(act_group));
    }
    check_linear(layer_name(l, "q_proj"), L.q_proj, q_width, s.hidden, st.w_bits, "settings.w_bits", input_bits[kClipAttnIn]);
    check_linear(layer_name(l, "k_proj"), L.k_proj, kv_width, s.hidden, st.w_bits, "settings.w_bits", input_bits[kClipAttnIn]);
    check_linear(layer_name(l, "v_proj"), L.v_proj, kv_width, s.hidden, st.w_bits, "settings.w_bits", input_bits[kClipAttnIn]);
    check_linear(layer_name(l, "o_proj"), L.o_proj, s.hidden, q_width, st.w_bits, "settings.w_bits", input_bits[kClipAttnOut]);
    check_linear(layer_name(l, "gate_proj"), L.gate_proj, s.intermediate, s.hidden, st.w_bits, "settings.w_bits", input_bits[kClipFfnIn]);
    check_linear(layer_name(l, "up_proj"), L.up_proj, s.intermediate, s.hidden, st.w_bits, "settings.w_bits", input_bits[kClipFfnIn]);
    check_linear(layer_name(l, "down_proj"), L.down_proj, s.hidden, s.intermediate, st.w_bits, "settings.w_bits", input_bits[kClipDownIn]);
    check_clip(layer_name(l, "softmax_clip"), L.softmax_clip);
    for (int site = 0; site < kNumClipSites; ++site) {
      const std::string name = "QuantizedModel: " + layer_name(l, "act_clip[") + act_clip_site_name(site) + "]";
      check_requant_clip(L.act_clip[site], name.c_str());
    }
  }
  check_channel_vector("final_norm", model.final_norm, s.hidden, -gamma_limit, gamma_limit);
  check_linear("lm_head", model.lm_head, s.vocab, s.hidden, st.head_bits, "settings.head_bits", head_input_bits(st));
}

}  // namespace illm
