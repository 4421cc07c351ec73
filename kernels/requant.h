#pragma once
// DI_REQUANT: dynamic per-row requantization of an int64 row to n-bit codes with a dyadic scale found by
// integer operations only (docs/method.md §3.4 normative, §7.2 symmetric form; docs/integer-semantics.md
// "## DI_REQUANT").
#include <cstdint>
#include <limits>
#include <span>

#include "kernels/dyadic.h"

namespace illm {

// Output of one DI_REQUANT call: real value of code Y_j ≈ (scale.m / 2^scale.k) · (Y_j − zero_point).
struct DiRequantResult {
  int64_t zero_point = 0;
  Dyadic scale;
  friend bool operator==(const DiRequantResult&, const DiRequantResult&) = default;
};

// Clip ratio of an asymmetric DI_REQUANT (docs/integer-semantics.md "## Clipped DI_REQUANT"): the row's range
// [lo, hi] becomes [−rshr(−lo·m, k), rshr(hi·m, k)] (128-bit products), values beyond it saturate. The ratio m/2^k
// lies in (0, 1]; m == 0 (the default) is no clipping, i.e. today's DI_REQUANT bit for bit.
struct RequantClip {
  int64_t m = 0;
  int32_t k = 0;
  bool enabled() const { return m != 0; }
  friend bool operator==(const RequantClip&, const RequantClip&) = default;
};
// Throws illm::Error naming `what` unless clip is off or 1 <= m <= 2^k with 0 <= k <= 30.
void check_requant_clip(RequantClip clip, const char* what);

// Asymmetric DI_REQUANT of §3.4. Row v (real value v_j · m_in / 2^k_in) → unsigned codes in
// [0, 2^out_bits − 1], written to codes_out (same length as v), zero point in [0, 2^out_bits − 1].
// Requires 1 <= out_bits <= 16 (<= 31 for int32 codes), 1 <= mantissa_bits <= 24, 1 <= m_in < 2^32.
// An all-zero row gives codes 0, zero point 0 and scale (1, 0). With `clip` enabled the range is clipped first.
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<int32_t> codes_out, RequantClip clip = {});
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint16_t> codes_out, RequantClip clip = {});
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint8_t> codes_out, RequantClip clip = {});

// The per-row part of DI_REQUANT, for kernels that run the per-element conversion themselves (the optimized
// kernels; the functions above use it too). For a row whose values lie in [lo, hi] (lo <= 0 <= hi, i.e. the row's
// min and max widened to include 0), or |v| <= max_abs for the symmetric form:
//   code(v) = sat(rshr(rshr(v, normalize) · multiplier, fraction_bits) + zero_point, code_min, code_max)
// with |rshr(v, normalize) · multiplier| < 2^62 (§3.4). An all-zero row has multiplier 0: every code is 0, zero
// point 0, scale (1, 0). Arguments as for di_requant / di_requant_symmetric (not checked here).
// A clipped plan also has a saturation window [input_min, input_max] for rshr(v, normalize): every value at or
// below input_min codes to code_min, every value at or above input_max to code_max, so clamping to the window
// first is exact and keeps the product below 2^62 for values outside the clipped range. Unclipped plans have the
// full int64 window (the clamp is a no-op).
struct RequantPlan {
  int normalize = 0;
  int64_t multiplier = 0;
  int fraction_bits = 0;
  int64_t zero_point = 0;
  int64_t code_min = 0, code_max = 0;
  int64_t input_min = std::numeric_limits<int64_t>::min(), input_max = std::numeric_limits<int64_t>::max();
  Dyadic scale;
  int64_t code(int64_t v) const {
    return sat(rshr(sat(rshr(v, normalize), input_min, input_max) * multiplier, fraction_bits) + zero_point,
               code_min, code_max);
  }
};
RequantPlan plan_requant(int64_t lo, int64_t hi, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                         RequantClip clip = {});
RequantPlan plan_requant_symmetric(uint64_t max_abs, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits);

// Symmetric DI_REQUANT_SYM of §7.2: R = max_j |v_j|, Q = 2^(out_bits−1) − 1, signed codes in [−Q, Q],
// zero point 0 (returned as 0). Same requirements as di_requant, out_bits >= 2.
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int32_t> codes_out);
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int16_t> codes_out);
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int8_t> codes_out);

}  // namespace illm
