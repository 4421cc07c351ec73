#include "kernels/reference/attention.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/di_softmax.h"

namespace illm {
namespace {

constexpr int64_t kInt32Max = 2147483647;

int bit_length(uint64_t x) { return x == 0 ? 0 : msb(x) + 1; }

}  // namespace

int32_t attention_head_row(const HeadCodes& query, int32_t query_bits, const KvHeadView& keys,
                           const KvHeadView& values, int32_t value_bits, int32_t valid_len, Dyadic clip,
                           const IntegerSettings& settings, std::span<int64_t> out,
                           std::span<int32_t> probs_out) {
  const int32_t d = keys.head_dim;
  if (query.codes.size() != static_cast<size_t>(d) || values.head_dim != d || out.size() != static_cast<size_t>(d))
    throw Error("attention: query, key, value and output widths differ (head_dim " + std::to_string(d) + ")");
  if (valid_len < 1 || valid_len > keys.length || valid_len > values.length)
    throw Error("attention: valid_len " + std::to_string(valid_len) + " outside [1, " +
                std::to_string(std::min(keys.length, values.length)) + "]");
  if (query_bits < 1 || query_bits > 8 || value_bits < 1 || value_bits > 8)
    throw Error("attention: code widths must be in [1, 8]");
  const int64_t q_max = (int64_t{1} << query_bits) - 1, v_max = (int64_t{1} << value_bits) - 1;
  if (accumulator_kind_for_bound(d, q_max, q_max) != AccumulatorKind::kInt32)
    throw Error("attention: head_dim " + std::to_string(d) + " at " + std::to_string(query_bits) +
                " bits can overflow the int32 Q·Kᵀ accumulator");
  const int p_out = settings.prob_bits;
  if (p_out < 1 || p_out > 31 || (int64_t{1} << (p_out - 1)) > kInt32Max / v_max)
    throw Error("attention: 2^(prob_bits − 1) · Q_v must fit int32 (prob_bits " + std::to_string(p_out) + ")");
  if (query.scale.m < 1 || query.scale.m >= (int64_t{1} << 31))
    throw Error("attention: query scale mantissa " + std::to_string(query.scale.m) + " outside [1, 2^31)");

  std::vector<int64_t> logits(valid_len);
  std::vector<int32_t> probs(valid_len);
  std::vector<int32_t> acc(d, 0);

  // Q·Kᵀ over the valid keys, aligned to one exponent K2 across their per-token scales.
  const ColumnAlignment key_alignment = align_columns(keys.scales.first(valid_len), settings.mantissa_bits);
  const uint8_t* q = query.codes.data();
  const int32_t z_q = query.zero_point;
  for (int32_t j = 0; j < valid_len; ++j) {
    const uint8_t* k = keys.row(j);
    const int32_t z_k = keys.zero_points[j];
    int32_t dot = 0;
    for (int32_t c = 0; c < d; ++c) dot += (int32_t{q[c]} - z_q) * (int32_t{k[c]} - z_k);
    logits[j] = int64_t{dot} * key_alignment.mantissas[j];
  }
  const int64_t k_in = int64_t{query.scale.k} + key_alignment.exponent;
  if (k_in < INT32_MIN || k_in > INT32_MAX) throw Error("attention: logit exponent out of range");
  di_clipped_softmax_row(logits, query.scale.m, static_cast<int32_t>(k_in), valid_len, clip, settings, probs);
  if (!probs_out.empty()) {
    if (probs_out.size() != static_cast<size_t>(valid_len))
      throw Error("attention: probability output of " + std::to_string(probs_out.size()) + " entries for " +
                  std::to_string(valid_len) + " keys");
    std::copy(probs.begin(), probs.end(), probs_out.begin());
  }

  // Scale-ratio folding of the values' per-token scales into the probabilities, then the int32 P·V.
  const ColumnAlignment value_alignment = align_columns(values.scales.first(valid_len), settings.mantissa_bits);
  const int64_t nu_max = *std::max_element(value_alignment.mantissas.begin(), value_alignment.mantissas.end());
  if (nu_max < 1) throw Error("attention: value scales have no non-zero mantissa");
  for (int32_t j = 0; j < valid_len; ++j) {
    const int32_t w = static_cast<int32_t>(rdiv(int64_t{probs[j]} * value_alignment.mantissas[j], nu_max));
    if (w == 0) continue;
    const uint8_t* v = values.row(j);
    const int32_t z_v = values.zero_points[j];
    for (int32_t c = 0; c < d; ++c) acc[c] += w * (int32_t{v[c]} - z_v);
  }
  for (int32_t c = 0; c < d; ++c) out[c] = int64_t{acc[c]} * nu_max;
  const int64_t exponent = int64_t{value_alignment.exponent} + p_out - 1;
  if (exponent < INT32_MIN || exponent > INT32_MAX) throw Error("attention: output exponent out of range");
  return static_cast<int32_t>(exponent);
}

int32_t requantize_heads_exponent(std::span<const uint64_t> max_abs, std::span<const int32_t> exponents) {
  // Common exponent: the finest, capped so that no head's left shift leaves 2^62.
  int64_t common = INT64_MIN, cap = INT64_MAX;
  for (size_t h = 0; h < exponents.size(); ++h) {
    common = std::max<int64_t>(common, exponents[h]);
    if (max_abs[h] != 0) cap = std::min<int64_t>(cap, int64_t{exponents[h]} + 62 - bit_length(max_abs[h]));
  }
  common = std::min(common, cap);
  if (common < INT32_MIN || common > INT32_MAX) throw Error("attention head requant: exponent out of range");
  return static_cast<int32_t>(common);
}

DiRequantResult requantize_heads(std::span<const int64_t> values, std::span<const int32_t> exponents, int out_bits,
                                 int mantissa_bits, std::span<uint16_t> codes_out, RequantClip clip,
                                 TripFactors trip) {
  const size_t heads = exponents.size();
  if (heads == 0 || values.size() % heads != 0 || codes_out.size() != values.size())
    throw Error("attention head requant: " + std::to_string(values.size()) + " values, " + std::to_string(heads) +
                " heads, " + std::to_string(codes_out.size()) + " outputs");
  const size_t d = values.size() / heads;
  std::vector<int64_t> aligned(values.size());
  std::vector<uint64_t> max_abs(heads, 0);
  for (size_t h = 0; h < heads; ++h)
    for (size_t c = 0; c < d; ++c) {
      const int64_t v = values[h * d + c];
      if (v >= (int64_t{1} << 62) || v <= -(int64_t{1} << 62))
        throw Error("attention head requant: value outside ±2^62 in head " + std::to_string(h));
      max_abs[h] = std::max<uint64_t>(max_abs[h], static_cast<uint64_t>(v < 0 ? -v : v));
    }
  const int32_t common = requantize_heads_exponent(max_abs, exponents);
  for (size_t h = 0; h < heads; ++h) {
    const int64_t shift = int64_t{common} - exponents[h];  // >= 0: exact shl; < 0: rounding rshr
    for (size_t c = 0; c < d; ++c) {
      const int64_t v = values[h * d + c];
      aligned[h * d + c] = shift >= 0 ? shl(v, static_cast<int>(shift))
                                      : rshr(v, static_cast<int>(std::min<int64_t>(-shift, 64)));
    }
  }
  return di_requant_trip(std::span<const int64_t>(aligned.data(), aligned.size()), 1, common, out_bits,
                         mantissa_bits, codes_out, clip, trip);
}

AttentionInputs attention_inputs(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                                 int32_t first_position) {
  const int32_t rows = query.rows, heads = query.heads, d = query.head_dim;
  if (d != cache.head_dim()) throw Error("attention: query head_dim differs from the cache's");
  if (query.codes.size() != static_cast<size_t>(rows) * heads * d ||
      query.zero_points.size() != static_cast<size_t>(rows) * heads ||
      query.scales.size() != static_cast<size_t>(rows) * heads)
    throw Error("attention: query tensor has inconsistent sizes");
  const int32_t kv_heads = cache.n_kv_heads();
  if (layer < 0 || layer >= cache.n_layers()) throw Error("attention: layer " + std::to_string(layer) + " is not in the cache");
  if (heads % kv_heads != 0)
    throw Error("attention: " + std::to_string(heads) + " query heads are not a multiple of " +
                std::to_string(kv_heads) + " KV heads");
  AttentionInputs in;
  in.group = heads / kv_heads;
  in.keys.resize(kv_heads);
  in.values.resize(kv_heads);
  const int32_t keys_needed = first_position + rows;
  for (int32_t g = 0; g < kv_heads; ++g) {
    in.keys[g] = cache.keys(layer, g);
    in.values[g] = cache.values(layer, g);
    if (in.keys[g].length < keys_needed || in.values[g].length < keys_needed)
      throw Error("attention: layer " + std::to_string(layer) + " cache holds " + std::to_string(in.keys[g].length) +
                  " tokens, the queries need " + std::to_string(keys_needed));
  }
  return in;
}

void attention_layer(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                     Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                     RequantClip out_clip) {
  attention_layer_scored(query, cache, layer, first_position, clip, settings, out_bits, out, out_clip, {});
}

void attention_layer_scored(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                            int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                            QuantizedActivation& out, RequantClip out_clip, std::span<int64_t> received) {
  attention_layer_trip(query, cache, layer, first_position, clip, settings, out_bits, out, out_clip, TripFactors{},
                       received);
}

void attention_layer_trip(const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                          int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                          QuantizedActivation& out, RequantClip out_clip, TripFactors trip,
                          std::span<int64_t> received) {
  const int32_t rows = query.rows, heads = query.heads, d = query.head_dim;
  const AttentionInputs in = attention_inputs(query, cache, layer, first_position);
  const bool scored = !received.empty();
  if (scored && received.size() != static_cast<size_t>(rows))
    throw Error("attention: received-attention output of " + std::to_string(received.size()) + " entries for " +
                std::to_string(rows) + " query tokens");
  if (scored) std::fill(received.begin(), received.end(), 0);
  std::vector<int32_t> probs;
  const int32_t group = in.group;
  const std::vector<KvHeadView>& key_views = in.keys;
  const std::vector<KvHeadView>& value_views = in.values;
  check_trip_factors(trip, static_cast<size_t>(heads) * d, "attention");
  resize_activation(out, rows, heads * d, out_bits + trip_extra_bits(trip));
  std::vector<int64_t> head_values(static_cast<size_t>(rows) * out.cols);
  std::vector<int32_t> head_exponents(static_cast<size_t>(rows) * heads);
  for (int32_t t = 0; t < rows; ++t)
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      const int32_t valid = first_position + t + 1;
      if (scored) probs.resize(static_cast<size_t>(valid));
      head_exponents[index] = attention_head_row(
          query.head(t, h), query.bits, key_views[h / group], value_views[h / group], query.bits, valid, clip,
          settings, std::span<int64_t>(head_values.data() + index * d, static_cast<size_t>(d)),
          scored ? std::span<int32_t>(probs) : std::span<int32_t>());
      // The call's own tokens are slots first_position … first_position + t of this row.
      for (int32_t j = 0; scored && j <= t; ++j) received[j] += probs[first_position + j];
    }
  for (int32_t t = 0; t < rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * out.cols;
    const DiRequantResult r = requantize_heads(
        std::span<const int64_t>(head_values.data() + offset, static_cast<size_t>(out.cols)),
        std::span<const int32_t>(head_exponents.data() + static_cast<size_t>(t) * heads, static_cast<size_t>(heads)),
        out_bits, settings.mantissa_bits, std::span<uint16_t>(out.codes.data() + offset, static_cast<size_t>(out.cols)),
        out_clip, trip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  }
}

}  // namespace illm
