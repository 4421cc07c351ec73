// The integer forward pass, top to bottom (docs/method.md §7.7). Each step names the operator that does the work; the
// numerics live in those operators (kernels/reference/*, kernels/optimized/di_matmul_fast.*).
#include "kernels/executor.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/embedding.h"
#include "kernels/reference/residual.h"
#include "kernels/requant.h"

namespace illm {
namespace {

constexpr int kResidualBits = 16;  // int16 residual stream (§7.2)
constexpr int kRopeInputBits = 16; // q/k requantized to int16 symmetric before the rotation (§7.4)

// ---------------------------------------------------------------------------------------------------------------
// Model validation: every check names the field.

[[noreturn]] void fail(const std::string& field, const std::string& reason) {
  throw Error("QuantizedModel: " + field + " " + reason);
}

void check_range(const std::string& field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi)
    fail(field, "= " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void check_linear(const std::string& name, const QuantizedLinear& w, int32_t out, int32_t in, int32_t bits,
                  const char* bits_setting, int32_t input_bits) {
  check_range(name + ".out_features", w.out_features, out, out);
  check_range(name + ".in_features", w.in_features, in, in);
  if (w.bits != bits)
    fail(name + ".bits", "= " + std::to_string(w.bits) + " differs from " + bits_setting + " = " + std::to_string(bits));
  const size_t count = static_cast<size_t>(out) * static_cast<size_t>(in);
  if (w.codes.size() != count)
    fail(name + ".codes", "has " + std::to_string(w.codes.size()) + " entries, expected " + std::to_string(count));
  if (w.zero_points.size() != static_cast<size_t>(out))
    fail(name + ".zero_points", "has " + std::to_string(w.zero_points.size()) + " entries, expected " +
                                    std::to_string(out));
  if (w.scales.size() != static_cast<size_t>(out))
    fail(name + ".scales", "has " + std::to_string(w.scales.size()) + " entries, expected " + std::to_string(out));
  const int64_t q = (int64_t{1} << bits) - 1;
  for (size_t i = 0; i < w.codes.size(); ++i)
    if (w.codes[i] > q) fail(name + ".codes[" + std::to_string(i) + "]", "exceeds " + std::to_string(q));
  for (int32_t j = 0; j < out; ++j) {
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

// ---------------------------------------------------------------------------------------------------------------
// Row-parallel helpers. OpenMP regions must not throw: the first error (lowest row) is kept and rethrown.
// Rows are independent, so the result does not depend on the thread count. Small work stays serial: a parallel
// region costs more than a few thousand element operations (parallel_work_threshold(), di_matmul_fast.h).

template <typename RowFunction>
void for_each_row(int32_t rows, int64_t work_per_row, RowFunction&& row) {
  std::string failure;
  int32_t failed_row = rows;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * work_per_row > parallel_work_threshold())
  for (int32_t t = 0; t < rows; ++t) {
    try {
      row(t);
    } catch (const Error& e) {
#pragma omp critical(illm_executor_failure)
      if (t < failed_row) {
        failed_row = t;
        failure = e.what();
      }
    }
  }
  if (failed_row < rows) throw Error(failure);
}

QuantizedActivation empty_activation(int32_t rows, int32_t cols, int32_t bits) {
  QuantizedActivation a;
  a.rows = rows;
  a.cols = cols;
  a.bits = bits;
  a.codes.resize(static_cast<size_t>(rows) * cols);
  a.zero_points.resize(rows);
  a.scales.resize(rows);
  return a;
}

PerHeadActivation empty_per_head(int32_t rows, int32_t heads, int32_t head_dim, int32_t bits) {
  PerHeadActivation a;
  a.rows = rows;
  a.heads = heads;
  a.head_dim = head_dim;
  a.bits = bits;
  a.codes.resize(static_cast<size_t>(rows) * heads * head_dim);
  a.zero_points.resize(static_cast<size_t>(rows) * heads);
  a.scales.resize(static_cast<size_t>(rows) * heads);
  return a;
}

// DI-Norm of every token of the residual stream → `bits`-wide per-token codes (§5.4).
QuantizedActivation norm_rows(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
                              const IntegerSettings& settings, int bits) {
  QuantizedActivation x = empty_activation(h.rows, h.cols, bits);
  for_each_row(h.rows, int64_t{h.cols} * 4, [&](int32_t t) {
    thread_local std::vector<uint8_t> codes;
    codes.resize(h.cols);
    const size_t offset = static_cast<size_t>(t) * h.cols;
    const DiRequantResult r =
        di_norm_row(std::span<const int16_t>(h.codes.data() + offset, h.cols), h.scales[t], gamma, eps, settings,
                    bits, std::span<uint8_t>(codes));
    std::copy(codes.begin(), codes.end(), x.codes.begin() + static_cast<ptrdiff_t>(offset));
    x.zero_points[t] = static_cast<int32_t>(r.zero_point);
    x.scales[t] = r.scale;
  });
  return x;
}

// q or k (§7.4): the projection's accumulator → int16 symmetric per token → RoPE in int32 at the token's position
// → DI_REQUANT per (token, head) to `bits`.
PerHeadActivation rope_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                             const RopeTableView& rope, const IntegerSettings& settings, int bits) {
  PerHeadActivation out = empty_per_head(acc.rows, heads, head_dim, bits);
  for_each_row(acc.rows, int64_t{acc.cols} * 8, [&](int32_t t) {
    thread_local std::vector<int32_t> rotated;
    thread_local std::vector<int64_t> head;
    rotated.resize(acc.cols);
    head.resize(head_dim);
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult q16 =
        di_requant_symmetric(std::span<const int64_t>(acc.values.data() + offset, acc.cols), acc.scales[t].m,
                             acc.scales[t].k, kRopeInputBits, settings.mantissa_bits, std::span<int32_t>(rotated));
    rope_rotate_row(rotated, head_dim, first_position + t, rope);
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      std::copy_n(rotated.begin() + static_cast<ptrdiff_t>(h) * head_dim, head_dim, head.begin());
      const DiRequantResult r =
          di_requant(std::span<const int64_t>(head), q16.scale.m, q16.scale.k, bits, settings.mantissa_bits,
                     std::span<uint8_t>(out.codes.data() + index * head_dim, static_cast<size_t>(head_dim)));
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
  });
  return out;
}

// v (§7.5): DI_REQUANT of the projection's accumulator per (token, head) to `bits`.
PerHeadActivation split_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                              const IntegerSettings& settings, int bits) {
  PerHeadActivation out = empty_per_head(acc.rows, heads, head_dim, bits);
  for_each_row(acc.rows, int64_t{acc.cols} * 4, [&](int32_t t) {
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      const DiRequantResult r = di_requant(
          std::span<const int64_t>(acc.values.data() + index * head_dim, static_cast<size_t>(head_dim)),
          acc.scales[t].m, acc.scales[t].k, bits, settings.mantissa_bits,
          std::span<uint8_t>(out.codes.data() + index * head_dim, static_cast<size_t>(head_dim)));
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
  });
  return out;
}

// DI-SwiGLU of every token (§6.2) → `bits`-wide codes for down_proj.
QuantizedActivation swiglu_rows(const QuantizedActivation& gate, const QuantizedActivation& up,
                                const ChannelVector& inv_alpha, const IntegerSettings& settings, int bits) {
  QuantizedActivation m = empty_activation(gate.rows, gate.cols, bits);
  for_each_row(gate.rows, int64_t{gate.cols} * 16, [&](int32_t t) {
    thread_local std::vector<uint8_t> g, u, out;
    g.resize(gate.cols);
    u.resize(gate.cols);
    out.resize(gate.cols);
    const size_t offset = static_cast<size_t>(t) * gate.cols;
    for (int32_t c = 0; c < gate.cols; ++c) {
      g[c] = static_cast<uint8_t>(gate.codes[offset + c]);
      u[c] = static_cast<uint8_t>(up.codes[offset + c]);
    }
    const DiRequantResult r =
        di_swiglu_row(SwigluInput{g, gate.zero_points[t], gate.scales[t]}, SwigluInput{u, up.zero_points[t], up.scales[t]},
                      inv_alpha, settings, bits, std::span<uint8_t>(out));
    std::copy(out.begin(), out.end(), m.codes.begin() + static_cast<ptrdiff_t>(offset));
    m.zero_points[t] = static_cast<int32_t>(r.zero_point);
    m.scales[t] = r.scale;
  });
  return m;
}

std::string layer_name(size_t l, const char* part) { return "layers[" + std::to_string(l) + "]." + part; }

}  // namespace

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
  check_range("settings.mantissa_bits", st.mantissa_bits, 1, 24);
  check_range("settings.softmax_in_bits", st.softmax_in_bits, 1, 16);
  check_range("settings.prob_bits", st.prob_bits, 1, 31);
  check_range("settings.sigmoid_bits", st.sigmoid_bits, 1, 30);
  check_range("settings.swiglu_in_bits", st.swiglu_in_bits, 2, 8);
  check_range("settings.norm_frac_bits", st.norm_frac_bits, 1, 20);
  check_range("settings.head_bits", st.head_bits, 2, 8);
  check_range("settings.embed_bits", st.embed_bits, 2, 16);
  // §3.6 bounds of the attention products (int32): Q·Kᵀ over head_dim, P·V with Σ_j W_j <= 2^(p_out−1).
  const int64_t q_a = (int64_t{1} << st.a_bits) - 1;
  if (accumulator_kind_for_bound(s.head_dim, q_a, q_a) != AccumulatorKind::kInt32)
    fail("shape.head_dim", "= " + std::to_string(s.head_dim) + " overflows the int32 Q·Kᵀ accumulator at a_bits " +
                               std::to_string(st.a_bits));
  if ((int64_t{1} << (st.prob_bits - 1)) * q_a > 2147483647)
    fail("settings.prob_bits", "= " + std::to_string(st.prob_bits) + " overflows the int32 P·V accumulator at a_bits " +
                                   std::to_string(st.a_bits));
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
  const int64_t gamma_limit = (int64_t{1} << 31) - 1;
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    check_channel_vector(layer_name(l, "attn_norm"), L.attn_norm, s.hidden, -gamma_limit, gamma_limit);
    check_channel_vector(layer_name(l, "ffn_norm"), L.ffn_norm, s.hidden, -gamma_limit, gamma_limit);
    check_channel_vector(layer_name(l, "swiglu_inv_alpha"), L.swiglu_inv_alpha, s.intermediate, 0,
                         (int64_t{1} << 24) - 1);
    check_linear(layer_name(l, "q_proj"), L.q_proj, q_width, s.hidden, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "k_proj"), L.k_proj, kv_width, s.hidden, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "v_proj"), L.v_proj, kv_width, s.hidden, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "o_proj"), L.o_proj, s.hidden, q_width, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "gate_proj"), L.gate_proj, s.intermediate, s.hidden, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "up_proj"), L.up_proj, s.intermediate, s.hidden, st.w_bits, "settings.w_bits", st.a_bits);
    check_linear(layer_name(l, "down_proj"), L.down_proj, s.hidden, s.intermediate, st.w_bits, "settings.w_bits", st.a_bits);
    check_clip(layer_name(l, "softmax_clip"), L.softmax_clip);
  }
  check_channel_vector("final_norm", model.final_norm, s.hidden, -gamma_limit, gamma_limit);
  check_linear("lm_head", model.lm_head, s.vocab, s.hidden, st.head_bits, "settings.head_bits", st.head_bits);
}

int32_t argmax_row(const IntegerLogits& logits, int32_t row) {
  if (row < 0 || row >= logits.tokens || logits.vocab < 1 ||
      logits.values.size() != static_cast<size_t>(logits.tokens) * logits.vocab)
    throw Error("argmax: row " + std::to_string(row) + " outside logits of " + std::to_string(logits.tokens) +
                " tokens (or inconsistent sizes)");
  const int64_t* values = logits.values.data() + static_cast<size_t>(row) * logits.vocab;
  int32_t best = 0;
  for (int32_t v = 1; v < logits.vocab; ++v)
    if (values[v] > values[best]) best = v;  // strict: ties keep the lowest id
  return best;
}

int32_t Executor::argmax_last(const IntegerLogits& logits) { return argmax_row(logits, logits.tokens - 1); }

Executor::Executor(const QuantizedModel& model) : model_(model) {
  validate_quantized_model(model);
  const int b_m = model.settings.mantissa_bits;
  layers_.reserve(model.layers.size());
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    layers_.push_back(PreparedLayer{
        prepare_linear(L.q_proj, b_m, layer_name(l, "q_proj").c_str()),
        prepare_linear(L.k_proj, b_m, layer_name(l, "k_proj").c_str()),
        prepare_linear(L.v_proj, b_m, layer_name(l, "v_proj").c_str()),
        prepare_linear(L.o_proj, b_m, layer_name(l, "o_proj").c_str()),
        prepare_linear(L.gate_proj, b_m, layer_name(l, "gate_proj").c_str()),
        prepare_linear(L.up_proj, b_m, layer_name(l, "up_proj").c_str()),
        prepare_linear(L.down_proj, b_m, layer_name(l, "down_proj").c_str())});
  }
  lm_head_ = prepare_linear(model.lm_head, b_m, "lm_head");
  rope_ = rope_table_view(model);
  cache_ = KvCache(model.shape.n_layers, model.shape.n_kv_heads, model.shape.head_dim, model.shape.max_positions);
}

void Executor::reset() { cache_.reset(); }

IntegerLogits Executor::forward(std::span<const int32_t> token_ids) {
  const QuantizedModel& M = model_;
  const ModelShape& S = M.shape;
  const IntegerSettings& settings = M.settings;
  const int b_m = settings.mantissa_bits, a_bits = settings.a_bits;
  const int32_t tokens = static_cast<int32_t>(token_ids.size());
  const int32_t first = cache_.length();
  IntegerLogits logits;
  logits.vocab = S.vocab;
  if (tokens == 0) return logits;
  if (int64_t{first} + tokens > S.max_positions)
    throw Error("executor: positions " + std::to_string(first) + ".." + std::to_string(int64_t{first} + tokens - 1) +
                " pass max_positions = " + std::to_string(S.max_positions));

  // Embedding rows are already a per-token quantized int16 residual (§7.3).
  ResidualStream h = embedding_lookup(M, token_ids);
  try {
    for (size_t l = 0; l < M.layers.size(); ++l) {
      const QuantizedLayer& L = M.layers[l];
      const PreparedLayer& W = layers_[l];
      const int32_t layer = static_cast<int32_t>(l);

      // Attention half: DI-Norm → q/k/v DI-MatMul → RoPE + per-(token, head) codes → cache → attention.
      const QuantizedActivation x = norm_rows(h, L.attn_norm, M.norm_eps, settings, a_bits);
      const auto name = [&](const char* part) { return layer_name(l, part); };
      const PerHeadActivation q = rope_heads(di_matmul_accumulate_fast(x, W.q_proj, name("q_proj").c_str()),
                                             S.n_heads, S.head_dim, first, rope_, settings, a_bits);
      const PerHeadActivation k = rope_heads(di_matmul_accumulate_fast(x, W.k_proj, name("k_proj").c_str()),
                                             S.n_kv_heads, S.head_dim, first, rope_, settings, a_bits);
      const PerHeadActivation v = split_heads(di_matmul_accumulate_fast(x, W.v_proj, name("v_proj").c_str()),
                                              S.n_kv_heads, S.head_dim, settings, a_bits);
      for (int32_t t = 0; t < tokens; ++t)
        for (int32_t g = 0; g < S.n_kv_heads; ++g) cache_.store(layer, g, first + t, k.head(t, g), v.head(t, g));
      const QuantizedActivation attended = attention_layer(q, cache_, layer, first, L.softmax_clip, settings, a_bits);

      // o_proj's aligned accumulator goes straight into the residual add (fused epilogue, §7.2).
      h = residual_add(h, di_matmul_accumulate_fast(attended, W.o_proj, name("o_proj").c_str()), b_m, kResidualBits);

      // MLP half: DI-Norm → gate/up DI-MatMul (8-bit) → DI-SwiGLU → down_proj → fused residual add.
      const QuantizedActivation x2 = norm_rows(h, L.ffn_norm, M.norm_eps, settings, a_bits);
      const int swiglu_bits = settings.swiglu_in_bits;
      const QuantizedActivation gate = di_matmul_fast(x2, W.gate_proj, swiglu_bits, name("gate_proj").c_str());
      const QuantizedActivation up = di_matmul_fast(x2, W.up_proj, swiglu_bits, name("up_proj").c_str());
      const QuantizedActivation mixed = swiglu_rows(gate, up, L.swiglu_inv_alpha, settings, a_bits);
      h = residual_add(h, di_matmul_accumulate_fast(mixed, W.down_proj, name("down_proj").c_str()), b_m, kResidualBits);
    }

    // Final DI-Norm to head_bits codes, then the LM head's aligned accumulator = the integer logits (§7.6).
    const QuantizedActivation xh = norm_rows(h, M.final_norm, M.norm_eps, settings, settings.head_bits);
    AlignedAccumulator head = di_matmul_accumulate_fast(xh, lm_head_, "lm_head");
    cache_.commit(first + tokens);
    logits.tokens = tokens;
    logits.values = std::move(head.values);
    logits.scales = std::move(head.scales);
    return logits;
  } catch (...) {
    cache_.rollback();
    throw;
  }
}

}  // namespace illm
