// The executor's forward pass (kernels/executor.cpp) step by step; shapes in comments use T (tokens), C (hidden),
// H / H_kv (query / key-value heads), d (head_dim), F (intermediate), V (vocab).
#include "formats/onnx/llama_graph.h"

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "formats/onnx/di_operators.h"
#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/hadamard.h"

namespace illm::formats::onnx_export {
namespace {

constexpr int kResidualBits = 16;   // int16 residual stream (kernels/executor.cpp)
constexpr int kRopeInputBits = 16;  // q/k requantized to int16 before the rotation
constexpr int kAlignedMantissaBits = 24;
constexpr int kHadamardInputBits = 16;       // the symmetric codes an online Hadamard transforms
constexpr int32_t kMaxExportedHadamard = 4096;  // the explicit int32 matrix: n² entries (64 MiB at 4096)

[[noreturn]] void refuse(const std::string& field, const std::string& reason) {
  throw Error("ONNX export: unsupported model: " + field + " " + reason);
}

std::string layer_name(size_t l, const char* part) { return "layers[" + std::to_string(l) + "]." + part; }

// The aligned accumulator of a linear must stay below 2^61 (|P'| <= K·Q_in·Q_w·2^24): the graph's rounding shifts
// add up to 2^61 to it and the DI_REQUANT range hi − lo must fit int64.
void check_linear_bound(const std::string& name, const QuantizedLinear& w, int input_bits) {
  const unsigned __int128 worst = static_cast<unsigned __int128>(w.in_features) * ((uint64_t{1} << input_bits) - 1) *
                                  ((uint64_t{1} << w.bits) - 1) << kAlignedMantissaBits;
  if (worst >= (static_cast<unsigned __int128>(1) << 61))
    refuse(name, "has a reduction length " + std::to_string(w.in_features) + " whose aligned accumulator can reach " +
                     "2^61 (the graph's 64-bit bound)");
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string raw(values.size() * sizeof(T), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());  // little-endian hosts, as ONNX's raw_data
  return raw;
}

struct Accumulator {
  Value values;  // int64 [T][out]
  RowScale scale;
};

// Per-group DI-MatMul (docs/integer-semantics.md "## Per-group DI-MatMul"): the weight [in][out] as
// [groups][G][out] minus its zero points [groups][1][out], the centered input [T][in] as [groups][T][G], one batched
// MatMul [groups][T][out] (int32 when G·Q1·Q2 <= 2^31 − 1, else int64: exact per group), times μ [groups][1][out]
// in int64, summed over the groups (exact: |P'| <= in·Q1·Q2·2^24 < 2^61, checked by check_linear_bound).
// A per-group weight's zero points and aligned mantissas, [out][groups] in the model, group-major [groups][1][out]
// for the graph.
struct GroupMajorWeightScales {
  std::vector<int32_t> zero_points;
  std::vector<int64_t> mu;
};

GroupMajorWeightScales group_major_scales(const QuantizedLinear& w, const ColumnAlignment& alignment) {
  const int64_t out = w.out_features, groups = weight_groups(w);
  GroupMajorWeightScales s{std::vector<int32_t>(static_cast<size_t>(groups * out)),
                           std::vector<int64_t>(static_cast<size_t>(groups * out))};
  for (int64_t r = 0; r < out; ++r)
    for (int64_t q = 0; q < groups; ++q) {
      s.zero_points[static_cast<size_t>(q * out + r)] = w.zero_points[static_cast<size_t>(r * groups + q)];
      s.mu[static_cast<size_t>(q * out + r)] = alignment.mantissas[static_cast<size_t>(r * groups + q)];
    }
  return s;
}

// The weight [in][out] minus its per-group zero points, [groups][G][out], as acc_type.
Value centered_weight_groups(GraphBuilder& g, const Value& weights, const QuantizedLinear& w,
                             const std::vector<int32_t>& zero_points, ElementType acc_type, const std::string& name) {
  const int64_t out = w.out_features, group = weight_group_size(w), groups = weight_groups(w);
  const Value zero = g.initializer(name + ".zero_points", ElementType::kInt32, {groups, 1, out}, raw_bytes(zero_points));
  return g.cast(g.sub(g.reshape(weights, std::vector<int64_t>{groups, group, out}), zero), acc_type);
}

Value grouped_products(GraphBuilder& g, const Codes& x, int input_bits, const Value& weights, const QuantizedLinear& w,
                       const ColumnAlignment& alignment, const std::string& name) {
  const int64_t out = w.out_features, group = weight_group_size(w), groups = weight_groups(w);
  const GroupMajorWeightScales scales = group_major_scales(w, alignment);
  const ElementType acc_type = accumulator_kind(group, input_bits, w.bits) == AccumulatorKind::kInt32
                                   ? ElementType::kInt32
                                   : ElementType::kInt64;
  const Value centered_w = centered_weight_groups(g, weights, w, scales.zero_points, acc_type, name);
  const Value centered_x = g.cast(g.sub(x.codes, x.zero_point), acc_type);                       // [T][in]
  const Value x_groups = g.transpose(g.reshape(centered_x, std::vector<int64_t>{0, groups, group}), {1, 0, 2});
  const Value products = g.cast(g.matmul(x_groups, centered_w), ElementType::kInt64);            // [groups][T][out]
  const Value scaled = g.mul(products, g.initializer_i64(name + ".mu", {groups, 1, out}, scales.mu));
  return g.reduce_sum(scaled, 0, /*keep_dims=*/false);                                          // [T][out]
}

// The alignment of per-group activation scales [T][groups][1] (docs/integer-semantics.md "## Per-group
// activations"): K1_t = min k over the groups that are not all-zero ((m, k) ≠ (1, 0); 0 if none) [T][1][1], and
// λ = rshr(m, k − K1) (0 for all-zero groups) [T][groups][1]. Exponents lie in the int32 range.
struct ActGroupAlignment {
  Value k1, lambda;
};

ActGroupAlignment align_act_groups(GraphBuilder& g, IntegerPrimitives& p, const RowScale& scale) {
  const Value empty = g.logical_and(g.equal(scale.m, g.scalar(1)), g.equal(scale.k, g.scalar(0)));
  const int64_t none = int64_t{1} << 30;  // beyond every dyadic exponent
  const Value k_min = g.reduce_min_int32(g.where(empty, g.scalar(none), scale.k), 1);  // [T][1][1]
  ActGroupAlignment a;
  a.k1 = g.where(g.equal(k_min, g.scalar(none)), g.scalar(0), k_min);
  // λ = rshr(m, k − K1) with k − K1 >= 0; m < 2^24, so shifts past 62 give 0 as the kernel's do.
  a.lambda = g.where(empty, g.scalar(0),
                     p.rshr(scale.m, p.clamp(g.sub(scale.k, a.k1), 0, 62), IntegerPrimitives::Magnitude::kNonNegative));
  return a;
}

// The row dyadic (1, K1 − b_m + K2) of P' with per-group activations, [T][1].
RowScale act_group_row_scale(GraphBuilder& g, const Value& k1, const ColumnAlignment& alignment, int mantissa_bits) {
  const Value k1_row = g.squeeze(k1, {2});  // [T][1]
  return RowScale{g.add(g.mul(k1_row, g.scalar(0)), g.scalar(1)),
                  g.add(k1_row, g.scalar(int64_t{alignment.exponent} - mantissa_bits))};
}

// Per-group activations (group A) with per-group weights (group G, A divides G; docs/integer-semantics.md "## Per-group
// activations with per-group weights"). The weight [in][out] minus its zero points [H][1][out] (H = in/G weight
// groups) as [H][G/A][A][out]; the centered input [T][in/A][A] as [H][G/A][T][A]; one batched MatMul gives
// P [H][G/A][T][out] (int32 when A·Q1·Q2 <= 2^31 − 1, else int64: exact per activation group). T = Σ over the G/A
// activation groups of each weight group of P·λ (int64, exact: |T| < G·Q1·Q2·2^b_m), then
// P' = Σ_h rshr(T, b_m)·μ_(j,h) (int64, exact: |P'| < in·Q1·Q2·2^24 < 2^61 by check_linear_bound), row dyadic
// (1, K1 − b_m + K2) with K2 over all (row, group) scales.
Accumulator act_and_weight_group_products(GraphBuilder& g, IntegerPrimitives& p, const Codes& x, ElementType acc_type,
                                          const Value& weights, const QuantizedLinear& w,
                                          const ColumnAlignment& alignment, const std::string& name,
                                          int mantissa_bits) {
  const int64_t out = w.out_features, act_group = x.group_size, weight_groups_per_row = weight_groups(w);
  const int64_t per_weight_group = weight_group_size(w) / act_group;  // activation groups per weight group
  const GroupMajorWeightScales scales = group_major_scales(w, alignment);
  const Value centered_w = g.reshape(centered_weight_groups(g, weights, w, scales.zero_points, acc_type, name),
                                     std::vector<int64_t>{weight_groups_per_row, per_weight_group, act_group, out});
  // [T][in/A][…] → [T][H][G/A][…] → [H][G/A][T][…] (Reshape copies T with 0: it stays the first dimension).
  const auto by_weight_group = [&](const Value& v, int64_t last) {
    return g.transpose(g.reshape(v, std::vector<int64_t>{0, weight_groups_per_row, per_weight_group, last}), {1, 2, 0, 3});
  };
  const Value centered_x = by_weight_group(g.cast(g.sub(x.codes, x.zero_point), acc_type), act_group);
  const Value products = g.cast(g.matmul(centered_x, centered_w), ElementType::kInt64);  // [H][G/A][T][out]
  const ActGroupAlignment a = align_act_groups(g, p, x.scale);
  const Value t = g.reduce_sum(g.mul(products, by_weight_group(a.lambda, 1)), 1, /*keep_dims=*/false);  // [H][T][out]
  const Value mu = g.initializer_i64(name + ".mu", {weight_groups_per_row, 1, out}, scales.mu);
  Accumulator acc;
  acc.values = g.reduce_sum(g.mul(p.rshr(t, mantissa_bits), mu), 0, /*keep_dims=*/false);  // [T][out]
  acc.scale = act_group_row_scale(g, a.k1, alignment, mantissa_bits);
  return acc;
}

// DI-MatMul of per-group activations (docs/integer-semantics.md "## Per-group activations") with a per-row weight
// (int32 codes [in][out]): x has codes [T][groups][G] (groups = ⌈in/G⌉; a short last group padded to G, see
// requantize_groups) and one zero point and dyadic per (token, group). The centered weight gets zero rows for the
// padding, so a padded channel adds 0 and the short group's dot runs over its own channels only. The group dots
// P [groups][T][out] as one batched MatMul (int32 when G·Q1·Q2 <= 2^31 − 1, else int64: exact per group, the short
// one included); S = Σ_g P·λ in int64 (exact: |S| < in·Q1·Q2·2^b_m < 2^61 by check_linear_bound),
// P' = rshr(S, b_m)·μ_j with the row dyadic (1, K1 − b_m + K2). A per-group weight takes
// act_and_weight_group_products.
Accumulator act_group_products(GraphBuilder& g, IntegerPrimitives& p, const Codes& x, int input_bits,
                               const Value& weights, const QuantizedLinear& w, const ColumnAlignment& alignment,
                               const std::string& name, int mantissa_bits) {
  const int64_t in = w.in_features, out = w.out_features, group = x.group_size;
  const int64_t groups = act_group_count(w.in_features, static_cast<int32_t>(x.group_size));
  const ElementType acc_type = accumulator_kind(static_cast<int32_t>(group), input_bits, w.bits) == AccumulatorKind::kInt32
                                   ? ElementType::kInt32
                                   : ElementType::kInt64;
  if (weight_per_group(w))
    return act_and_weight_group_products(g, p, x, acc_type, weights, w, alignment, name, mantissa_bits);
  const Value zero_points = g.initializer(name + ".zero_points", ElementType::kInt32, {out}, raw_bytes(w.zero_points));
  Value centered = g.cast(g.sub(weights, zero_points), acc_type);  // [in][out]
  if (const int64_t padding = groups * group - in; padding > 0) {  // [groups·G][out]: zero rows for the padding
    const size_t bytes = static_cast<size_t>(padding * out) * (acc_type == ElementType::kInt32 ? 4 : 8);
    centered = g.concat({centered, g.initializer(name + ".padding", acc_type, {padding, out}, std::string(bytes, '\0'))}, 0);
  }
  const Value centered_w = g.reshape(centered, std::vector<int64_t>{groups, group, out});
  const Value centered_x = g.transpose(g.cast(g.sub(x.codes, x.zero_point), acc_type), {1, 0, 2});  // [groups][T][G]
  const Value products = g.cast(g.matmul(centered_x, centered_w), ElementType::kInt64);           // [groups][T][out]
  const ActGroupAlignment a = align_act_groups(g, p, x.scale);
  const Value sum = g.reduce_sum(g.mul(products, g.transpose(a.lambda, {1, 0, 2})), 0, /*keep_dims=*/false);  // [T][out]
  Accumulator acc;
  acc.values = g.mul(p.rshr(sum, mantissa_bits), g.initializer_i64(name + ".mu", {out}, alignment.mantissas));
  acc.scale = act_group_row_scale(g, a.k1, alignment, mantissa_bits);
  return acc;
}

// DI-MatMul's aligned accumulator P' = (Σ_k (x − z1)(W − z2)) · μ_j with the weight-only alignment (μ, K2) computed
// here by the kernel's own align_columns. Weights are stored transposed [in][out] as uint8 codes, two 4-bit codes
// per byte when bits <= 4 (low nibble = even output column); the products run in an int32 MatMul when the §3.6
// bound K·Q1·Q2 <= 2^31 − 1 holds (exact: every partial sum is bounded by it), else in int64.
Accumulator linear(GraphBuilder& g, IntegerPrimitives& p, const Codes& x, int input_bits, const QuantizedLinear& w,
                   const std::string& name, int mantissa_bits) {
  const ColumnAlignment alignment = align_columns(w.scales, mantissa_bits);
  const int32_t in = w.in_features, out = w.out_features;
  const bool packed = w.bits <= 4;
  const int32_t stored_out = packed ? (out + 1) / 2 : out;
  std::vector<uint8_t> codes(static_cast<size_t>(in) * stored_out, 0);
  for (int32_t c = 0; c < in; ++c)
    for (int32_t r = 0; r < out; ++r) {
      const uint8_t code = weight_code(w, r, c);
      uint8_t& byte = codes[static_cast<size_t>(c) * stored_out + (packed ? r / 2 : r)];
      byte = packed ? static_cast<uint8_t>(byte | (r % 2 == 0 ? code : code << 4)) : code;
    }
  const Value stored = g.initializer(name + ".codes", ElementType::kUint8, {in, stored_out}, raw_bytes(codes));
  const ElementType acc_type =
      accumulator_kind(in, input_bits, w.bits) == AccumulatorKind::kInt32 ? ElementType::kInt32 : ElementType::kInt64;
  Value weights = g.cast(stored, ElementType::kInt32);
  if (packed) {
    const Value sixteen = g.cast(g.scalar(16), ElementType::kInt32);
    const Value low = g.unsqueeze(g.mod(weights, sixteen), {-1});
    const Value high = g.unsqueeze(g.div(weights, sixteen), {-1});
    weights = g.reshape(g.concat({low, high}, -1), std::vector<int64_t>{in, 2 * stored_out});
    if (2 * stored_out != out) weights = g.slice(weights, 1, 0, out);
  }
  if (x.group_size > 0) return act_group_products(g, p, x, input_bits, weights, w, alignment, name, mantissa_bits);
  Accumulator acc;
  acc.scale = RowScale{x.scale.m, g.add(x.scale.k, g.scalar(alignment.exponent))};
  if (weight_per_group(w)) {
    acc.values = grouped_products(g, x, input_bits, weights, w, alignment, name);
    return acc;
  }
  const Value zero_points = g.initializer(name + ".zero_points", ElementType::kInt32, {out}, raw_bytes(w.zero_points));
  const Value centered_w = g.cast(g.sub(weights, zero_points), acc_type);  // [in][out]
  const Value centered_x = g.cast(g.sub(x.codes, x.zero_point), acc_type);
  const Value mu = g.initializer_i64(name + ".mu", {out}, alignment.mantissas);
  acc.values = g.mul(g.cast(g.matmul(centered_x, centered_w), ElementType::kInt64), mu);
  return acc;
}

// Per-group activation codes (docs/integer-semantics.md "## Per-group activations"): the site's per-row values v
// [T][C] (|v| < 2^value_bits) with their row dyadic (m < 2^b_m), every group of G columns through its own DI_REQUANT
// with the site's clip → a_bits codes [T][⌈C/G⌉][G], zero points and dyadics [T][⌈C/G⌉][1]. When G does not divide
// C the short last group is padded to G by repeating its last value (Pad's "edge" mode, as a Gather of the channel
// indices): DI_REQUANT sees a row only through its min and max, which the padding keeps, so the group's codes, zero
// point and scale are its own; the padding's codes are left for the DI-MatMul to multiply by 0.
Codes requantize_groups(GraphBuilder& g, DiOperators& di, const Value& v, const RowScale& row_scale, int value_bits,
                        int64_t channels, const QuantizedModel& model, RequantClip clip) {
  const int64_t group = model.act_group_size;
  const int64_t count = act_group_count(static_cast<int32_t>(channels), model.act_group_size);
  Value padded = v;
  if (count * group != channels) {
    std::vector<int64_t> indices(static_cast<size_t>(count * group), channels - 1);
    for (int64_t c = 0; c < channels; ++c) indices[static_cast<size_t>(c)] = c;
    padded = g.gather(v, g.vector(indices), 1);  // [T][⌈C/G⌉·G]
  }
  const Value groups = g.reshape(padded, std::vector<int64_t>{0, count, group});
  const RowScale scale{g.unsqueeze(row_scale.m, {1}), g.unsqueeze(row_scale.k, {1})};  // [T][1][1]
  Codes out = di.requant(groups, scale, model.settings.mantissa_bits, model.settings.a_bits, value_bits, clip);
  out.group_size = group;
  return out;
}

// The same from a site's 16-bit per-row codes (made with no clip), centered first (exact: |code − z| < 2^16).
Codes requantize_groups(GraphBuilder& g, DiOperators& di, const Codes& codes16, int64_t channels,
                        const QuantizedModel& model, RequantClip clip) {
  return requantize_groups(g, di, g.sub(codes16.codes, codes16.zero_point), codes16.scale, 16, channels, model, clip);
}

// Per-token tensors shared by every layer.
struct Sequence {
  Value mask;      // bool [T][T]: key j valid for query t (j <= t)
  Value cos, sin;  // int64 [T][1][d/2]
  Value head_map;  // int64 [H]: query head h reads KV head h / (H / H_kv)
};

// [T][heads][1] → [heads][1][T] (one value per key, broadcast over query rows), then to query heads.
Value keys_row(GraphBuilder& g, const Value& per_token_head, const Value& head_map) {
  return g.gather(g.transpose(per_token_head, {1, 2, 0}), head_map, 0);
}

// Attention of every query head (GQA via head_map) over the keys 0..t: Q·Kᵀ, key alignment, DI-ClippedSoftmax,
// value alignment with scale-ratio folding, int32 P·V, then requantize_heads (kernels/reference/attention.cpp).
Codes attention(GraphBuilder& g, DiOperators& di, const Codes& q, const Codes& k, const Codes& v, const Sequence& seq,
                const ModelShape& shape, const IntegerSettings& settings, Dyadic clip, int out_bits, RequantClip out_clip,
                TripFactors out_trip) {
  IntegerPrimitives& p = di.p;
  const auto to_heads = [&](const Value& per_token) { return g.gather(g.transpose(per_token, {1, 0, 2}), seq.head_map, 0); };
  // Centered codes as int32: |q − z| <= 255 (qkv_code_bits <= 8), d·Q_qkv² <= 2^31 − 1 (validated).
  const Value q_c = g.cast(g.transpose(g.sub(q.codes, q.zero_point), {1, 0, 2}), ElementType::kInt32);  // [H][T][d]
  const Value k_c = g.cast(to_heads(g.sub(k.codes, k.zero_point)), ElementType::kInt32);                 // [H][T][d]
  const Value dots = g.cast(g.matmul(q_c, g.transpose(k_c, {0, 2, 1})), ElementType::kInt64);              // [H][T][T]
  const DiOperators::Alignment key_alignment =
      di.align_prefix(keys_row(g, k.scale.m, seq.head_map), keys_row(g, k.scale.k, seq.head_map), seq.mask);
  const Value logits = g.mul(dots, key_alignment.mantissas);  // |P·μ| < 2^31·2^24
  const RowScale query_scale{g.transpose(q.scale.m, {1, 0, 2}),
                             g.add(g.transpose(q.scale.k, {1, 0, 2}), key_alignment.exponent)};  // [H][T][1]
  const Value probs = di.clipped_softmax(logits, seq.mask, query_scale, clip);

  const DiOperators::Alignment value_alignment =
      di.align_prefix(keys_row(g, v.scale.m, seq.head_map), keys_row(g, v.scale.k, seq.head_map), seq.mask);
  const Value nu = g.where(seq.mask, value_alignment.mantissas, g.scalar(0));
  const Value nu_max = g.max(g.reduce_max_int32(nu, -1), g.scalar(1));  // ν < 2^24; >= 1 for every valid row
  const Value folded = g.cast(p.rdiv(g.mul(probs, nu), nu_max), ElementType::kInt32);  // W_j <= P_j <= 2^30
  const Value v_c = g.cast(to_heads(g.sub(v.codes, v.zero_point)), ElementType::kInt32);  // [H][T][d]
  // Σ_j W_j <= 2^(p_out−1), so |acc| <= 2^(p_out−1)·Q_v <= 2^31 − 1 (validated at qkv_code_bits) for every
  // partial sum.
  const Value acc = g.cast(g.matmul(folded, v_c), ElementType::kInt64);
  const Value out = g.transpose(g.mul(acc, nu_max), {1, 0, 2});  // [T][H][d]
  const Value exponents =
      g.transpose(g.add(value_alignment.exponent, g.scalar(settings.prob_bits - 1)), {1, 0, 2});  // [T][H][1]
  return di.requantize_heads(out, exponents, shape.n_heads, shape.head_dim, out_bits, out_clip, out_trip);
}

// The explicit int32 matrix Hᵀ of plan_hadamard(n), [n][n], for hadamard_rows (one initializer shared by the layers).
Value hadamard_matrix_initializer(GraphBuilder& g, int32_t n, const std::string& name) {
  const std::vector<int32_t> h = hadamard_matrix(plan_hadamard(n));  // H[i][j], row-major
  std::vector<int32_t> transposed(h.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) transposed[static_cast<size_t>(j * n + i)] = h[static_cast<size_t>(i * n + j)];
  return g.initializer(name, ElementType::kInt32, {n, n}, raw_bytes(transposed));
}

// hadamard_rows (kernels/reference/hadamard.h) along the last axis: x·Hᵀ as an int32 MatMul. Exact: every partial sum
// is at most row_l1·max|x| <= 2^31 − 1 in magnitude (the operator's precondition, which 16-bit codes, or RoPE of
// them, meet for every exported size).
Value hadamard_last_axis(GraphBuilder& g, const Value& x, const Value& transposed_matrix) {
  return g.cast(g.matmul(g.cast(x, ElementType::kInt32), transposed_matrix), ElementType::kInt64);
}

// q or k: DI_REQUANT_SYM of the projection to 16 bits per token, RoPE per head, [the online WHT per head,]
// DI_REQUANT per (token, head) to the model's Q/K/V width (settings.qkv_bits; a_bits when 0).
Codes rope_heads(GraphBuilder& g, DiOperators& di, const Accumulator& acc, int32_t heads, const Sequence& seq,
                 const QuantizedModel& model, const Value* hadamard, RequantClip clip) {
  const int32_t d = model.shape.head_dim;
  const Codes q16 = di.requant_symmetric(acc.values, acc.scale, 31, kRopeInputBits, 61);
  const Value per_head = g.reshape(q16.codes, std::vector<int64_t>{0, heads, d});
  Value rotated = di.rope(per_head, d, seq.cos, seq.sin, model.rope_frac_bits);
  if (hadamard != nullptr) rotated = hadamard_last_axis(g, rotated, *hadamard);  // |value| < 2^31
  const RowScale scale{g.unsqueeze(q16.scale.m, {1}), g.unsqueeze(q16.scale.k, {1})};  // [T][1][1]
  return di.requant(rotated, scale, 31, qkv_code_bits(model.settings), 32, clip);
}

// v: DI_REQUANT per (token, head) of the projection, to the Q/K/V width as q and k.
Codes split_heads(GraphBuilder& g, DiOperators& di, const Accumulator& acc, int32_t heads, const QuantizedModel& model,
                  RequantClip clip) {
  const Value per_head = g.reshape(acc.values, std::vector<int64_t>{0, heads, model.shape.head_dim});
  const RowScale scale{g.unsqueeze(acc.scale.m, {1}), g.unsqueeze(acc.scale.k, {1})};
  return di.requant(per_head, scale, 31, qkv_code_bits(model.settings), 61, clip);
}

Value table_rows(GraphBuilder& g, const std::string& name, const std::vector<int16_t>& table, int64_t rows,
                 int64_t cols, const Value& positions) {
  const Value stored = g.initializer(name, ElementType::kInt16, {rows, cols}, raw_bytes(table));
  return g.unsqueeze(g.cast(g.gather(stored, positions), ElementType::kInt64), {1});  // [T][1][cols]
}

}  // namespace

void check_exportable(const QuantizedModel& model) {
  validate_quantized_model(model);
  const ModelShape& s = model.shape;
  const IntegerSettings& st = model.settings;
  if (s.hidden >= (1 << 14)) refuse("shape.hidden", "= " + std::to_string(s.hidden) + " (DI-Norm's Σ Z² needs < 16384)");
  // Every DI_REQUANT site of the forward pass: (output bits, symmetric); per-group activations add the 16-bit
  // per-row codes of their sites; the final DI-Norm makes the LM head's head_input_bits codes; q, k and v are
  // requantized to qkv_code_bits.
  const int group_sites_bits = model.act_group_size > 0 ? 16 : st.a_bits;
  const std::pair<int, bool> sites[] = {{st.a_bits, false},           {kResidualBits, true},
                                        {st.softmax_in_bits, false},  {st.swiglu_in_bits, false},
                                        {head_input_bits(st), false}, {kRopeInputBits, true},
                                        {group_sites_bits, false},    {qkv_code_bits(st), false}};
  for (const auto& [bits, symmetric] : sites) {
    const int64_t q = symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
    const unsigned __int128 top = static_cast<unsigned __int128>(((int64_t{1} << st.mantissa_bits) - 1) * q)
                                  << (61 - bits);
    if (top < (static_cast<unsigned __int128>(1) << 62))
      refuse("settings.mantissa_bits", "= " + std::to_string(st.mantissa_bits) + " is too small for the graph's " +
                                           std::to_string(bits) + "-bit DI_REQUANT (needs (2^b_m − 1)·Q·2^(61 − bits) >= 2^62)");
  }
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    // A linear's input is E bits wider after a TRIP site (attn_in: q, k, v; attn_out: o; ffn_in: gate, up; down_in).
    const auto bits_after = [&](int site) { return st.a_bits + trip_extra_bits(L.trip(site)); };
    for (const auto& [part, w, site] : {std::tuple<const char*, const QuantizedLinear*, int>{"q_proj", &L.q_proj, kClipAttnIn},
                                        {"k_proj", &L.k_proj, kClipAttnIn}, {"v_proj", &L.v_proj, kClipAttnIn},
                                        {"o_proj", &L.o_proj, kClipAttnOut}, {"gate_proj", &L.gate_proj, kClipFfnIn},
                                        {"up_proj", &L.up_proj, kClipFfnIn}, {"down_proj", &L.down_proj, kClipDownIn}}) {
      check_linear_bound(layer_name(l, part), *w, bits_after(site));
      // Per-group weights with per-group activations: the graph sums whole activation groups per weight group
      // (model validation refuses the rest too; this keeps the graph's reshapes from ever seeing another case). As
      // the weight groups divide in_features, such a linear never has a short activation group: only per-row
      // weights meet one (act_group_products pads it).
      if (model.act_group_size > 0 && weight_per_group(*w) && weight_group_size(*w) % model.act_group_size != 0)
        refuse(layer_name(l, part) + ".group_size", "= " + std::to_string(w->group_size) +
                                                        " is not a multiple of act_group_size = " +
                                                        std::to_string(model.act_group_size));
    }
  }
  check_linear_bound("lm_head", model.lm_head, head_input_bits(st));  // per row or per group, as the block linears
  const std::pair<bool, int32_t> hadamards[] = {{model.hadamard_down, s.intermediate}, {model.hadamard_qk, s.head_dim}};
  for (const auto& [on, n] : hadamards)
    if (on && n > kMaxExportedHadamard)
      refuse(n == s.head_dim ? "hadamard_qk" : "hadamard_down",
             "of size " + std::to_string(n) + ": the graph's explicit int32 matrix is implemented up to " +
                 std::to_string(kMaxExportedHadamard) + " (butterflies as Add/Sub slices are not)");
  // Model features added later (per-group weight scales, …) must be refused here until the graph implements them.
}

void build_llama_graph(GraphBuilder& g, const QuantizedModel& model) {
  check_exportable(model);
  const ModelShape& S = model.shape;
  const IntegerSettings& settings = model.settings;
  const int b_m = settings.mantissa_bits, a_bits = settings.a_bits;
  IntegerPrimitives p(g);
  DiOperators di(p, settings);

  const Value input_ids = g.input(kInputIds, ElementType::kInt64, {Dim::fixed(1), Dim::named("T")});
  // Every intermediate keeps a shape that shape inference knows in terms of T (ONNX Runtime's session set-up
  // becomes quadratic in the node count when dimensions are unknown): no Range, no Reshape with −1.
  const Value ids = g.squeeze(input_ids, {0});                                                       // [T]
  const Value positions = g.sub(g.cumsum(g.add(g.mul(ids, g.scalar(0)), g.scalar(1)), 0), g.scalar(1));  // 0 … T−1
  // Gather rejects indices >= vocab; negative ones (which Gather would wrap) are sent out of range too, so that an
  // invalid id fails the run as it fails the executor. Positions past max_positions fail the RoPE table Gather.
  const Value checked_ids = g.where(g.less(ids, g.scalar(0)), g.scalar(S.vocab), ids);

  Sequence seq;
  seq.mask = g.less_equal(g.unsqueeze(positions, {0}), g.unsqueeze(positions, {1}));
  seq.cos = table_rows(g, "rope_cos", model.rope_cos, S.max_positions, S.head_dim / 2, positions);
  seq.sin = table_rows(g, "rope_sin", model.rope_sin, S.max_positions, S.head_dim / 2, positions);
  std::vector<int64_t> head_map;
  for (int32_t h = 0; h < S.n_heads; ++h) head_map.push_back(h / (S.n_heads / S.n_kv_heads));
  if (!model.layers.empty()) seq.head_map = g.vector(head_map);  // an unused initializer would be flagged
  Value down_hadamard, qk_hadamard;  // online Walsh–Hadamard matrices, when the model uses them
  const bool any_layer = !model.layers.empty();
  if (any_layer && model.hadamard_down) down_hadamard = hadamard_matrix_initializer(g, S.intermediate, "hadamard_down_t");
  if (any_layer && model.hadamard_qk) qk_hadamard = hadamard_matrix_initializer(g, S.head_dim, "hadamard_qk_t");
  const Value* qk = model.hadamard_qk ? &qk_hadamard : nullptr;

  // Embedding rows: int16 symmetric codes with one dyadic per vocabulary row.
  std::vector<int64_t> embed_m, embed_k;
  for (const Dyadic& d : model.embed_scales) embed_m.push_back(d.m), embed_k.push_back(d.k);
  const Value embed_codes =
      g.initializer("embed_codes", ElementType::kInt16, {S.vocab, S.hidden}, raw_bytes(model.embed_codes));
  Value h = g.cast(g.gather(embed_codes, checked_ids), ElementType::kInt64);  // [T][C]
  RowScale h_scale{g.unsqueeze(g.gather(g.initializer_i64("embed_scale_m", {S.vocab}, embed_m), checked_ids), {1}),
                   g.unsqueeze(g.gather(g.initializer_i64("embed_scale_k", {S.vocab}, embed_k), checked_ids), {1})};

  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    std::string prefix = std::to_string(l);
    prefix.insert(prefix.begin(), 'l');  // (not "l" + to_string: GCC 12 warns falsely about it)
    g.push_scope(prefix);
    const auto name = [&](const char* part) { return prefix + "." + part; };

    // TRIP sites (docs/integer-semantics.md "## TRIP channel factors"): their codes are E bits wider.
    const auto bits_after = [&](int site) { return a_bits + trip_extra_bits(L.trip(site)); };
    // Per-group activations: the site's operator makes 16-bit per-row codes with no clip, then every group is
    // requantized with the site's clip (no TRIP with act groups: model validation).
    const bool grouped = model.act_group_size > 0;
    const auto norm_site = [&](const ChannelVector& gamma, int site) {
      if (grouped)
        return requantize_groups(g, di, di.norm(h, h_scale, gamma, model.norm_eps, 16), S.hidden, model,
                                 L.act_clip[site]);
      return di.norm(h, h_scale, gamma, model.norm_eps, a_bits, L.act_clip[site], L.trip(site));
    };
    const Codes x = norm_site(L.attn_norm, kClipAttnIn);
    const int x_bits = bits_after(kClipAttnIn);
    const Codes q = rope_heads(g, di, linear(g, p, x, x_bits, L.q_proj, name("q_proj"), b_m), S.n_heads, seq, model, qk,
                               L.act_clip[kClipQ]);
    const Codes k = rope_heads(g, di, linear(g, p, x, x_bits, L.k_proj, name("k_proj"), b_m), S.n_kv_heads, seq, model,
                               qk, L.act_clip[kClipK]);
    const Codes v = split_heads(g, di, linear(g, p, x, x_bits, L.v_proj, name("v_proj"), b_m), S.n_kv_heads, model,
                                L.act_clip[kClipV]);
    const Codes attended =
        grouped ? requantize_groups(g, di,
                                    attention(g, di, q, k, v, seq, S, settings, L.softmax_clip, 16, RequantClip{}, {}),
                                    int64_t{S.n_heads} * S.head_dim, model, L.act_clip[kClipAttnOut])
                : attention(g, di, q, k, v, seq, S, settings, L.softmax_clip, a_bits, L.act_clip[kClipAttnOut],
                            L.trip(kClipAttnOut));
    const Accumulator o = linear(g, p, attended, bits_after(kClipAttnOut), L.o_proj, name("o_proj"), b_m);
    Codes residual = di.residual_add(h, h_scale, o.values, o.scale);
    h = residual.codes, h_scale = residual.scale;

    const Codes x2 = norm_site(L.ffn_norm, kClipFfnIn);
    const int swiglu_bits = settings.swiglu_in_bits;
    const Accumulator gate_acc = linear(g, p, x2, bits_after(kClipFfnIn), L.gate_proj, name("gate_proj"), b_m);
    const Accumulator up_acc = linear(g, p, x2, bits_after(kClipFfnIn), L.up_proj, name("up_proj"), b_m);
    const Codes gate = di.requant(gate_acc.values, gate_acc.scale, 31, swiglu_bits, 61);
    const Codes up = di.requant(up_acc.values, up_acc.scale, 31, swiglu_bits, 61);
    Codes mixed;
    if (model.hadamard_down) {  // DI_REQUANT_SYM of the products to 16 bits, the WHT, DI_REQUANT per token (no TRIP:
                                // validate_quantized_model refuses TRIP at down_in with this transform)
      const DiOperators::Products products = di.swiglu_products(gate, up, L.swiglu_inv_alpha);
      const Codes wide = di.requant_symmetric(products.values, products.scale, b_m + 1, kHadamardInputBits, 46);
      const Value transformed = hadamard_last_axis(g, wide.codes, down_hadamard);
      mixed = grouped ? requantize_groups(g, di, transformed, wide.scale, 32, S.intermediate, model,
                                          L.act_clip[kClipDownIn])
                      : di.requant(transformed, wide.scale, 31, a_bits, 32, L.act_clip[kClipDownIn]);
    } else if (grouped) {
      mixed = requantize_groups(g, di, di.swiglu(gate, up, L.swiglu_inv_alpha, 16), S.intermediate, model,
                                L.act_clip[kClipDownIn]);
    } else {
      mixed = di.swiglu(gate, up, L.swiglu_inv_alpha, a_bits, L.act_clip[kClipDownIn], L.trip(kClipDownIn));
    }
    const Accumulator down = linear(g, p, mixed, bits_after(kClipDownIn), L.down_proj, name("down_proj"), b_m);
    residual = di.residual_add(h, h_scale, down.values, down.scale);
    h = residual.codes, h_scale = residual.scale;
    g.pop_scope();
  }

  // The final DI-Norm makes head_input_bits codes (head_bits unless head_in_bits is set; up to 16, where linear()
  // takes the int64 MatMul the bound needs), per token; linear() also runs a per-group head.
  g.push_scope("head");
  const int head_in_bits = head_input_bits(settings);
  const Codes xh = di.norm(h, h_scale, model.final_norm, model.norm_eps, head_in_bits);
  const Accumulator logits = linear(g, p, xh, head_in_bits, model.lm_head, "lm_head", b_m);
  g.pop_scope();
  const std::vector<Dim> per_token{Dim::fixed(1), Dim::named("T")};
  g.output(g.unsqueeze(logits.values, {0}), kLogits, ElementType::kInt64,
           {Dim::fixed(1), Dim::named("T"), Dim::fixed(S.vocab)});
  g.output(g.transpose(logits.scale.m, {1, 0}), kLogitsScaleMantissa, ElementType::kInt64, per_token);
  g.output(g.transpose(logits.scale.k, {1, 0}), kLogitsScaleExponent, ElementType::kInt64, per_token);
}

}  // namespace illm::formats::onnx_export
