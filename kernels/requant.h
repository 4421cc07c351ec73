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

// Symmetric DI_REQUANT_SYM of §7.2: R = max_j |v_j|, Q = 2^(out_bits−1) − 1, signed codes in [−Q, Q],
// zero point 0 (returned as 0). Same requirements as di_requant, out_bits >= 2.
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int32_t> codes_out);
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int16_t> codes_out);
DiRequantResult di_requant_symmetric(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                     int mantissa_bits, std::span<int8_t> codes_out);

}  // namespace illm
