#pragma once
// DI_REQUANT: dynamic per-row requantization of an int64 row to n-bit codes with a dyadic scale found by
// integer operations only (docs/method.md §3.4 normative, §7.2 symmetric form; docs/integer-semantics.md
// "## DI_REQUANT").
#include <cstdint>
#include <span>

#include "kernels/dyadic.h"

namespace illm {

// Output of one DI_REQUANT call: real value of code Y_j ≈ (scale.m / 2^scale.k) · (Y_j − zero_point).
struct DiRequantResult {
  int64_t zero_point = 0;
  Dyadic scale;
  friend bool operator==(const DiRequantResult&, const DiRequantResult&) = default;
};

// Asymmetric DI_REQUANT of §3.4. Row v (real value v_j · m_in / 2^k_in) → unsigned codes in
// [0, 2^out_bits − 1], written to codes_out (same length as v), zero point in [0, 2^out_bits − 1].
// Requires 1 <= out_bits <= 16 (<= 31 for int32 codes), 1 <= mantissa_bits <= 24, 1 <= m_in < 2^32.
// An all-zero row gives codes 0, zero point 0 and scale (1, 0).
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<int32_t> codes_out);
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint16_t> codes_out);
DiRequantResult di_requant(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits,
                           std::span<uint8_t> codes_out);

// The per-row part of DI_REQUANT, for kernels that run the per-element conversion themselves (the optimized
// kernels; the functions above use it too). For a row whose values lie in [lo, hi] (lo <= 0 <= hi, i.e. the row's
// min and max widened to include 0), or |v| <= max_abs for the symmetric form:
//   code(v) = sat(rshr(rshr(v, normalize) · multiplier, fraction_bits) + zero_point, code_min, code_max)
// with |rshr(v, normalize) · multiplier| < 2^62 (§3.4). An all-zero row has multiplier 0: every code is 0, zero
// point 0, scale (1, 0). Arguments as for di_requant / di_requant_symmetric (not checked here).
struct RequantPlan {
  int normalize = 0;
  int64_t multiplier = 0;
  int fraction_bits = 0;
  int64_t zero_point = 0;
  int64_t code_min = 0, code_max = 0;
  Dyadic scale;
  int64_t code(int64_t v) const {
    return sat(rshr(rshr(v, normalize) * multiplier, fraction_bits) + zero_point, code_min, code_max);
  }
};
RequantPlan plan_requant(int64_t lo, int64_t hi, int64_t m_in, int32_t k_in, int out_bits, int mantissa_bits);
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
