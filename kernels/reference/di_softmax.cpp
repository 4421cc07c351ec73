#include "kernels/reference/di_softmax.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/di_exp.h"
#include "kernels/requant.h"

namespace illm {
namespace {
constexpr int64_t kUnboundedClip = int64_t{1} << 62;
constexpr int64_t kLogitLimit = int64_t{1} << 62;
}  // namespace

int64_t softmax_clip_in_logit_units(Dyadic clip, int64_t m_in, int32_t k_in) {
  if (clip.m == 0) return kUnboundedClip;
  if (clip.m < 0 || m_in < 1) throw Error("DI-ClippedSoftmax: clip mantissa must be >= 0 and m_in >= 1");
  // c^I = cdiv(c.m · 2^(k_in − c.k), m_in), with the power of two on whichever side keeps it exact.
  const int64_t e = static_cast<int64_t>(k_in) - clip.k;
  __int128 numerator = clip.m, denominator = m_in;
  if (e >= 0) {
    if (e + msb(static_cast<uint64_t>(clip.m)) >= 100) return kUnboundedClip;
    numerator <<= e;
  } else {
    if (-e + msb(static_cast<uint64_t>(m_in)) >= 100) return 1;  // a positive clip below one logit unit
    denominator <<= -e;
  }
  const __int128 q = (numerator + denominator - 1) / denominator;
  return q >= kUnboundedClip ? kUnboundedClip : static_cast<int64_t>(q);
}

DiSoftmaxRow di_clipped_softmax_row(std::span<const int64_t> logits_aligned, int64_t m_in, int32_t k_in,
                                    int valid_len, Dyadic clip, const IntegerSettings& settings,
                                    std::span<int32_t> probs_out) {
  const size_t n = logits_aligned.size();
  if (probs_out.size() != n)
    throw Error("DI-ClippedSoftmax: " + std::to_string(probs_out.size()) + " outputs for a row of " +
                std::to_string(n) + " logits");
  if (valid_len < 0 || static_cast<size_t>(valid_len) > n)
    throw Error("DI-ClippedSoftmax: valid_len " + std::to_string(valid_len) + " outside [0, " + std::to_string(n) + "]");
  const int p_out = settings.prob_bits;
  if (p_out < 1 || p_out > 31) throw Error("DI-ClippedSoftmax: prob_bits must be in [1, 31] (got " + std::to_string(p_out) + ")");
  if (settings.softmax_in_bits < 1 || settings.softmax_in_bits > 16)
    throw Error("DI-ClippedSoftmax: softmax_in_bits must be in [1, 16] (got " +
                std::to_string(settings.softmax_in_bits) + ")");

  DiSoftmaxRow row;
  row.valid_len = valid_len;
  std::fill(probs_out.begin() + valid_len, probs_out.end(), 0);  // masked keys: exactly 0
  if (valid_len == 0) return row;

  const std::span<const int64_t> valid = logits_aligned.first(static_cast<size_t>(valid_len));
  int64_t v_max = valid[0], v_min = valid[0];
  for (const int64_t v : valid) {
    v_max = std::max(v_max, v);
    v_min = std::min(v_min, v);
  }
  if (v_max >= kLogitLimit || v_min <= -kLogitLimit)
    throw Error("DI-ClippedSoftmax: aligned logits must satisfy |v| < 2^62");
  const int64_t clip_units = softmax_clip_in_logit_units(clip, m_in, k_in);
  // v_max − c^I in 128 bits (both terms < 2^62), then the clip range [lo, v_max].
  const __int128 clip_floor = static_cast<__int128>(v_max) - clip_units;
  const int64_t lo = clip_floor > v_min ? static_cast<int64_t>(clip_floor) : v_min;

  std::vector<int64_t> shifted(static_cast<size_t>(valid_len));  // d_j
  for (int j = 0; j < valid_len; ++j) shifted[j] = std::max(valid[j], lo) - v_max;  // ∈ [lo − v_max, 0]

  // Softmax input codes Y_j go straight into probs_out; they are replaced by E_j and then by P_j in place.
  const std::span<int32_t> work = probs_out.first(static_cast<size_t>(valid_len));
  const DiRequantResult input = di_requant(std::span<const int64_t>(shifted.data(), shifted.size()), m_in, k_in,
                                           settings.softmax_in_bits, settings.mantissa_bits, work);
  row.input_scale = input.scale;

  const DiExpFrame frame = di_exp_frame(input.scale.m, input.scale.k);
  row.abs_t = -frame.t;
  int64_t sum = 0;
  for (int32_t& code : work) {
    const int64_t x = static_cast<int64_t>(code) - input.zero_point;  // ≤ 0: the range's top is d = 0
    const int64_t e = di_exp(di_exp_promote(x, frame), frame.t, settings.exp_quadratic);
    code = static_cast<int32_t>(e);  // E ≤ |t| ≤ 2^15
    sum += e;
  }
  row.exp_sum = sum;  // ≥ |t| > 0: the maximum key has x = 0, E = |t|
  const int64_t one = int64_t{1} << (p_out - 1);
  for (int32_t& e : work) e = static_cast<int32_t>(fdiv(static_cast<int64_t>(e) * one, sum));  // E·2^30 < 2^46
  return row;
}

}  // namespace illm
