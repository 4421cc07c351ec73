#include "kernels/optimized/attention.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/optimized/linear.h"
#include "kernels/optimized/parallel.h"
#include "kernels/optimized/requant_rows.h"
#include "kernels/optimized/softmax.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/di_matmul.h"

namespace illm::optimized {
namespace {

constexpr int32_t kTokenBlock = 16;  // query tokens per task: their keys are read once for the whole block
constexpr int kAlignedMantissaBits = 24;

// Per worker thread, reused across calls.
struct Scratch {
  PackedActivations queries;
  std::vector<int32_t> dots;  // [rows][keys]
  std::vector<int32_t> key_exp_min, key_exp_max, value_exp_min, value_exp_max;  // prefix minima/maxima
  std::vector<int64_t> mu, logits, softmax, nu;
  std::vector<int32_t> probs, weights, acc;
  std::vector<int64_t> received;  // [the block's last token + 1]: this task's share of the received attention
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// The column alignment of align_columns (kernels/reference/di_matmul.cpp) over the first `valid` scales, given the
// prefix minimum and maximum exponent: K2 = min(k_max, k_min + 24 − b_m), μ_j by the row kernels. Returns K2 and
// max_j μ_j. A mantissa or μ of 2^24 or more (never emitted by DI_REQUANT) gets the reference's error.
std::pair<int32_t, int64_t> align_prefix(const RowKernels& k, const KvHeadView& view, int32_t valid, int32_t k_min,
                                         int32_t k_max, int mantissa_bits, int64_t* mu) {
  const int32_t exponent =
      static_cast<int32_t>(std::min<int64_t>(k_max, int64_t{k_min} + kAlignedMantissaBits - mantissa_bits));
  int64_t max_m = 0;
  const int64_t max_mu = k.align_mantissas(view.scale_m.data(), view.scale_k.data(), valid, exponent, mu, &max_m);
  if (max_m >= (int64_t{1} << kAlignedMantissaBits) || max_mu >= (int64_t{1} << kAlignedMantissaBits))
    align_columns(view.scales.first(static_cast<size_t>(valid)), mantissa_bits);  // throws, naming the column
  return {exponent, max_mu};
}

void prefix_exponents(const Dyadic* scales, int32_t n, std::vector<int32_t>& lo, std::vector<int32_t>& hi) {
  lo.resize(static_cast<size_t>(n));
  hi.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) {
    lo[j] = j == 0 ? scales[0].k : std::min(lo[j - 1], scales[j].k);
    hi[j] = j == 0 ? scales[0].k : std::max(hi[j - 1], scales[j].k);
  }
}

// W_j = rdiv(P_j·ν_j, ν*) for P_j, ν_j >= 0: floor((n + ⌊ν*/2⌋) / ν*) with n < 2^56, by q' = ⌊n·R / 2^64⌋,
// R = ⌊(2^64 − 1) / ν*⌋ (q' is q or q − 1: n/ν* − n·R/2^64 < n/2^64 + n/(ν*·2^64)·ν* < 1) and one correction.
void fold_value_scales(const int32_t* probs, const int64_t* nu, int32_t valid, int64_t nu_max, int32_t* w) {
  const uint64_t divisor = static_cast<uint64_t>(nu_max), half = divisor / 2;
  const uint64_t reciprocal = ~uint64_t{0} / divisor;
  for (int32_t j = 0; j < valid; ++j) {
    const uint64_t n = static_cast<uint64_t>(probs[j]) * static_cast<uint64_t>(nu[j]) + half;
    uint64_t q = static_cast<uint64_t>((static_cast<unsigned __int128>(n) * reciprocal) >> 64);
    q += n - q * divisor >= divisor ? 1 : 0;
    w[j] = static_cast<int32_t>(q);
  }
}

}  // namespace

void attention_layer(const Isa& isa, const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                     int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                     QuantizedActivation& out, RequantClip out_clip,
                     std::span<int64_t> received) {
  const int32_t rows = query.rows, heads = query.heads, d = query.head_dim;
  const AttentionInputs in = attention_inputs(query, cache, layer, first_position);
  const bool scored = !received.empty();
  if (scored && received.size() != static_cast<size_t>(rows))
    throw Error("attention: received-attention output of " + std::to_string(received.size()) + " entries for " +
                std::to_string(rows) + " query tokens");
  if (scored) std::fill(received.begin(), received.end(), 0);
  if (query.bits < 1 || query.bits > 8) throw Error("attention: code widths must be in [1, 8]");
  const int32_t kv_heads = cache.n_kv_heads(), group = in.group;
  const std::vector<KvHeadView>& key_views = in.keys;
  const std::vector<KvHeadView>& value_views = in.values;
  const int32_t keys_needed = first_position + rows;
  resize_activation(out, rows, heads * d, out_bits);
  std::vector<int64_t> head_values(static_cast<size_t>(rows) * out.cols);
  std::vector<int32_t> head_exponents(static_cast<size_t>(rows) * heads);

  const WeightFormat key_format = query.bits == 8 ? WeightFormat::kBytes8 : WeightFormat::kBytes7;
  const int32_t offset = key_format == WeightFormat::kBytes8 ? isa.dot.byte8_offset : 0;
  const int b_m = settings.mantissa_bits, p_out = settings.prob_bits;
  const int32_t token_blocks = (rows + kTokenBlock - 1) / kTokenBlock;

  const auto task = [&](int64_t index) {
    const int32_t g = static_cast<int32_t>(index % kv_heads), block = static_cast<int32_t>(index / kv_heads);
    const int32_t t0 = block * kTokenBlock, t1 = std::min(rows, t0 + kTokenBlock);
    const KvHeadView& keys = key_views[g];
    const KvHeadView& values = value_views[g];
    const int32_t n_keys = first_position + t1;  // the last query of the block sees every one of them
    Scratch& s = scratch();

    // Q·Kᵀ of the block's rows (token-major, then the group's heads) in one dot block.
    const int32_t q_rows = (t1 - t0) * group;
    const uint8_t* first_query = query.codes.data() + (static_cast<size_t>(t0) * heads + g * group) * d;
    // Rows of one token are contiguous (stride d); tokens are heads·d apart: pack token by token.
    PackedActivations& packed = s.queries;
    const ActivationLayout& layout = isa.dot.layout;
    packed.stride = (static_cast<size_t>(d) + layout.block - 1) / layout.block * layout.block;
    packed.codes.assign(static_cast<size_t>(q_rows) * packed.stride, 0);
    packed.row_sums.resize(static_cast<size_t>(q_rows));
    for (int32_t r = 0; r < q_rows; ++r) {
      const uint8_t* src = first_query + static_cast<size_t>(r / group) * heads * d + static_cast<size_t>(r % group) * d;
      int64_t sum = 0;
      for (int32_t c = 0; c < d; ++c) {
        packed.codes[static_cast<size_t>(r) * packed.stride + c] = src[c];
        sum += src[c];
      }
      packed.row_sums[r] = sum;
    }
    s.dots.resize(static_cast<size_t>(q_rows) * n_keys);
    DotBlockArgs a;
    a.x = packed.codes.data();
    a.x_stride = packed.stride;
    a.rows = q_rows;
    a.w = keys.codes.data();
    a.w_stride = static_cast<size_t>(d);
    a.cols = n_keys;
    a.k = d;
    a.x_bits = a.w_bits = query.bits;
    a.format = key_format;
    a.c = s.dots.data();
    a.c_stride = static_cast<size_t>(n_keys);
    isa.dot.dot_block(a);

    prefix_exponents(keys.scales.data(), n_keys, s.key_exp_min, s.key_exp_max);
    prefix_exponents(values.scales.data(), n_keys, s.value_exp_min, s.value_exp_max);
    s.mu.resize(n_keys);
    s.nu.resize(n_keys);
    s.logits.resize(n_keys);
    s.softmax.resize(n_keys);
    s.probs.resize(n_keys);
    s.weights.resize(n_keys);
    s.acc.resize(d);
    if (scored) s.received.assign(static_cast<size_t>(t1), 0);
    for (int32_t r = 0; r < q_rows; ++r) {
      const int32_t t = t0 + r / group, h = g * group + r % group;
      const int32_t valid = first_position + t + 1;
      const size_t pair = static_cast<size_t>(t) * heads + h;
      const int32_t z_q = query.zero_points[pair];
      const Dyadic q_scale = query.scales[pair];
      if (q_scale.m < 1 || q_scale.m >= (int64_t{1} << 31))
        throw Error("attention: query scale mantissa " + std::to_string(q_scale.m) + " outside [1, 2^31)");

      // Logits P_j·μ_j over the valid keys, aligned to K2 of their scales.
      const int32_t k2 = align_prefix(isa.rows, keys, valid, s.key_exp_min[valid - 1],
                                      s.key_exp_max[valid - 1], b_m, s.mu.data()).first;
      isa.rows.attention_logits(s.dots.data() + static_cast<size_t>(r) * n_keys, valid, keys.zero_points.data(),
                                keys.code_sums.data(), s.mu.data(), offset, packed.row_sums[r], z_q, d,
                                s.logits.data());
      const int64_t k_in = int64_t{q_scale.k} + k2;
      if (k_in < INT32_MIN || k_in > INT32_MAX) throw Error("attention: logit exponent out of range");
      clipped_softmax_row(isa.rows, s.logits.data(), valid, q_scale.m, static_cast<int32_t>(k_in), clip, settings,
                          s.probs.data(), s.softmax.data());
      for (int32_t j = 0; scored && j <= t; ++j) s.received[j] += s.probs[first_position + j];

      // Scale-ratio folding of the values' scales, then P·V.
      const auto [k_v, nu_max] = align_prefix(isa.rows, values, valid, s.value_exp_min[valid - 1],
                                              s.value_exp_max[valid - 1], b_m, s.nu.data());
      if (nu_max < 1) throw Error("attention: value scales have no non-zero mantissa");
      fold_value_scales(s.probs.data(), s.nu.data(), valid, nu_max, s.weights.data());
      std::fill(s.acc.begin(), s.acc.end(), 0);
      isa.rows.weighted_rows(s.weights.data(), valid, values.codes.data(), static_cast<size_t>(d), d, s.acc.data());
      int64_t zero_term = 0;
      for (int32_t j = 0; j < valid; ++j) zero_term += int64_t{s.weights[j]} * values.zero_points[j];
      int64_t* head_out = head_values.data() + pair * d;
      for (int32_t c = 0; c < d; ++c) head_out[c] = (int64_t{s.acc[c]} - zero_term) * nu_max;
      const int64_t exponent = int64_t{k_v} + p_out - 1;
      if (exponent < INT32_MIN || exponent > INT32_MAX) throw Error("attention: output exponent out of range");
      head_exponents[pair] = static_cast<int32_t>(exponent);
    }
    for (int32_t j = 0; scored && j < t1; ++j)
      std::atomic_ref<int64_t>(received[j]).fetch_add(s.received[j], std::memory_order_relaxed);
  };
  parallel_for(int64_t{kv_heads} * token_blocks, int64_t{kTokenBlock} * group * keys_needed * d * 4, task);

  // One DI_REQUANT per token over all heads (requantize_heads): the reference's common exponent, the shifts and the
  // requantization by the row kernels.
  parallel_for(rows, int64_t{out.cols} * 8, [&](int64_t t) {
    thread_local std::vector<uint64_t> max_abs;
    thread_local std::vector<int64_t> aligned;
    max_abs.resize(heads);
    aligned.resize(out.cols);
    const size_t offset_t = static_cast<size_t>(t) * out.cols;
    const int32_t* exponents = head_exponents.data() + static_cast<size_t>(t) * heads;
    for (int32_t h = 0; h < heads; ++h) {
      max_abs[h] = isa.rows.max_abs(head_values.data() + offset_t + static_cast<size_t>(h) * d, d);
      if (max_abs[h] >= (uint64_t{1} << 62))
        throw Error("attention head requant: value outside ±2^62 in head " + std::to_string(h));
    }
    const int32_t common = requantize_heads_exponent(max_abs, std::span<const int32_t>(exponents, heads));
    for (int32_t h = 0; h < heads; ++h) {
      const int64_t shift = int64_t{exponents[h]} - common;  // rshr amount (negative: exact left shift)
      isa.rows.shift_values(head_values.data() + offset_t + static_cast<size_t>(h) * d, d,
                            static_cast<int32_t>(std::clamp<int64_t>(shift, -62, 64)),
                            aligned.data() + static_cast<size_t>(h) * d);
    }
    const DiRequantResult r = requant_row(isa.rows, aligned.data(), out.cols, 1, common, out_bits,
                                          settings.mantissa_bits, out.codes.data() + offset_t, out_clip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  });
}

}  // namespace illm::optimized
