#include "kernels/requant.h"

#include <algorithm>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace illm {
namespace {

// Ceiling division of 128-bit values, a >= 0, b > 0; the quotient fits int64 here (asserted).
int64_t cdiv128_nonnegative(__int128 a, __int128 b) {
  assert(a >= 0 && b > 0);
  const __int128 q = (a + b - 1) / b;
  assert(q <= std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(q);
}

void check_arguments(const char* op, size_t n_values, size_t n_codes, int64_t m_in, int out_bits, int max_out_bits,
                     int min_out_bits, int mantissa_bits) {
  const std::string where = std::string(op) + ": ";
  if (n_values != n_codes)
    throw Error(where + "output has " + std::to_string(n_codes) + " codes for " + std::to_string(n_values) + " values");
  if (out_bits < min_out_bits || out_bits > max_out_bits)
    throw Error(where + "out_bits " + std::to_string(out_bits) + " outside [" + std::to_string(min_out_bits) + ", " +
                std::to_string(max_out_bits) + "] for this code type");
  if (mantissa_bits < 1 || mantissa_bits > 24)
    throw Error(where + "mantissa_bits " + std::to_string(mantissa_bits) + " outside [1, 24]");
  if (m_in < 1 || m_in >= (int64_t{1} << 31))
    throw Error(where + "input mantissa " + std::to_string(m_in) + " outside [1, 2^31)");
}

// The per-row part of §3.4 shared by both forms: from the normalized range R' (>= 1) and the number of
// output steps q_out, find the output dyadic (m_y, k_y) and the code multiplier A with F fraction bits.
struct RowConversion {
  Dyadic scale;
  int64_t multiplier = 0;  // A ≈ q_out · 2^F / R'
  int fraction_bits = 0;   // F
  int64_t convert(int64_t x) const { return rshr(x * multiplier, fraction_bits); }  // |x·A| < 2^62 (§3.4)
};

RowConversion plan_row(int64_t range, int64_t m_in, int32_t k_shifted, int64_t q_out, int out_bits,
                       int mantissa_bits) {
  const int64_t scaled_range = m_in * range;  // < 2^31 · (2^31 + 1) < 2^62
  const int64_t max_mantissa = (int64_t{1} << mantissa_bits) - 1;
  // Largest k_y with s_y · 2^k_y <= 2^b_m − 1, where s_y = m_in·R' / (q_out · 2^k').
  const int e = flog2_ratio(max_mantissa * q_out, scaled_range);
  const __int128 sr = scaled_range, q = q_out;
  // Ceiling: the emitted scale is >= the exact one, so codes never exceed q_out.
  const int64_t m_y = e >= 0 ? cdiv128_nonnegative(sr << e, q) : cdiv128_nonnegative(sr, q << -e);
  RowConversion c;
  c.scale = Dyadic{m_y, k_shifted + e};
  c.fraction_bits = 61 - out_bits;
  const int shift = c.fraction_bits + e;
  const __int128 m128 = m_in, my128 = m_y;
  c.multiplier = shift >= 0 ? rdiv128(m128 << shift, my128) : rdiv128(m128, my128 << -shift);
  return c;
}

// rshr(x·m, k) of a non-negative x (as __int128) and a ratio m/2^k <= 1: the result is <= x.
__int128 scale_by_ratio(__int128 x, RequantClip clip) {
  const __int128 p = x * clip.m;  // x <= 2^63, m <= 2^30
  return clip.k == 0 ? p : (p + (__int128{1} << (clip.k - 1))) >> clip.k;
}

template <typename Code>
DiRequantResult requant_asymmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                   int mantissa_bits, std::span<Code> codes_out, RequantClip clip) {
  constexpr int max_bits = std::numeric_limits<Code>::digits < 31 ? std::numeric_limits<Code>::digits : 31;
  check_arguments("DI_REQUANT", v.size(), codes_out.size(), m_in, out_bits, max_bits, 1, mantissa_bits);
  check_requant_clip(clip, "DI_REQUANT");
  int64_t lo = 0, hi = 0;  // the range always contains 0, so z ∈ [0, Q_o] (§9.1)
  for (const int64_t x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  const RequantPlan plan = plan_requant(lo, hi, m_in, k_in, out_bits, mantissa_bits, clip);
  for (size_t j = 0; j < v.size(); ++j) codes_out[j] = static_cast<Code>(plan.code(v[j]));
  return DiRequantResult{plan.zero_point, plan.scale};
}

template <typename Code>
DiRequantResult requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                  int mantissa_bits, std::span<Code> codes_out) {
  constexpr int max_bits = std::numeric_limits<Code>::digits + 1 < 31 ? std::numeric_limits<Code>::digits + 1 : 31;
  check_arguments("DI_REQUANT_SYM", v.size(), codes_out.size(), m_in, out_bits, max_bits, 2, mantissa_bits);
  uint64_t max_abs = 0;  // as unsigned: |INT64_MIN| = 2^63 fits
  for (const int64_t x : v) {
    const uint64_t a = x < 0 ? uint64_t{0} - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
    max_abs = std::max(max_abs, a);
  }
  const RequantPlan plan = plan_requant_symmetric(max_abs, m_in, k_in, out_bits, mantissa_bits);
  for (size_t j = 0; j < v.size(); ++j) codes_out[j] = static_cast<Code>(plan.code(v[j]));
  return DiRequantResult{0, plan.scale};
}

}  // namespace

void check_requant_clip(RequantClip clip, const char* what) {
  if (!clip.enabled()) return;
  if (clip.k < 0 || clip.k > 30 || clip.m < 1 || clip.m > (int64_t{1} << clip.k))
    throw Error(std::string(what) + ": clip ratio " + std::to_string(clip.m) + "/2^" + std::to_string(clip.k) +
                " outside (0, 1] (or exponent outside [0, 30])");
}

RequantPlan plan_requant(int64_t lo, int64_t hi, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                         RequantClip clip) {
  if (clip.enabled()) {
    // hi_c = rshr(hi·m, k), lo_c = −rshr(−lo·m, k); a row clipped to nothing keeps its range.
    const int64_t hi_c = static_cast<int64_t>(scale_by_ratio(hi, clip));
    const int64_t lo_c = static_cast<int64_t>(-scale_by_ratio(-static_cast<__int128>(lo), clip));
    if (hi_c != lo_c) {
      RequantPlan plan = plan_requant(lo_c, hi_c, m_in, k_in, out_bits, mantissa_bits);
      // Saturation window of y = rshr(v, normalize): y·A + 2^(F−1) >= (Q_o − z)·2^F ⇔ code Q_o, and
      // y·A + 2^(F−1) < (1 − z)·2^F ⇔ code 0 (A > 0; all terms below 2^62 in magnitude).
      const int64_t half = int64_t{1} << (plan.fraction_bits - 1);
      const int64_t one = int64_t{1} << plan.fraction_bits;
      plan.input_max = cdiv((plan.code_max - plan.zero_point) * one - half, plan.multiplier);
      plan.input_min = fdiv((1 - plan.zero_point) * one - half - 1, plan.multiplier);
      return plan;
    }
  }
  RequantPlan plan;
  const int64_t q_out = (int64_t{1} << out_bits) - 1;
  plan.code_min = 0;
  plan.code_max = q_out;
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);  // hi >= 0 >= lo: fits
  if (range == 0) return plan;  // all-zero row: codes 0, zero point 0, scale (1, 0)
  plan.normalize = std::max(0, msb(range) - 30);  // row brought below 2^31
  const int64_t lo_n = rshr(lo, plan.normalize), hi_n = rshr(hi, plan.normalize);
  const int64_t range_n = std::max<int64_t>(hi_n - lo_n, 1);
  const RowConversion conv = plan_row(range_n, m_in, k_in - plan.normalize, q_out, out_bits, mantissa_bits);
  plan.multiplier = conv.multiplier;
  plan.fraction_bits = conv.fraction_bits;
  plan.scale = conv.scale;
  plan.zero_point = -conv.convert(lo_n);
  return plan;
}

RequantPlan plan_requant_symmetric(uint64_t max_abs, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits) {
  RequantPlan plan;
  const int64_t q_out = (int64_t{1} << (out_bits - 1)) - 1;
  plan.code_min = -q_out;
  plan.code_max = q_out;
  if (max_abs == 0) return plan;
  plan.normalize = std::max(0, msb(max_abs) - 30);
  // rshr(max_abs, normalize) in unsigned arithmetic (max_abs may be 2^63); >= |rshr(v_j, normalize)|.
  const uint64_t half = plan.normalize > 0 ? uint64_t{1} << (plan.normalize - 1) : 0;
  const int64_t range_n = std::max<int64_t>(static_cast<int64_t>((max_abs + half) >> plan.normalize), 1);
  const RowConversion conv = plan_row(range_n, m_in, k_in - plan.normalize, q_out, out_bits, mantissa_bits);
  plan.multiplier = conv.multiplier;
  plan.fraction_bits = conv.fraction_bits;
  plan.scale = conv.scale;
  return plan;
}

DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<int32_t> codes_out, RequantClip clip) {
  return requant_asymmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out, clip);
}
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint16_t> codes_out, RequantClip clip) {
  return requant_asymmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out, clip);
}
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint8_t> codes_out, RequantClip clip) {
  return requant_asymmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out, clip);
}

DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int32_t> codes_out) {
  return requant_symmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out);
}
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int16_t> codes_out) {
  return requant_symmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out);
}
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int8_t> codes_out) {
  return requant_symmetric(v, m_in, k_in, out_bits, mantissa_bits, codes_out);
}

}  // namespace illm
