#include "kernels/dyadic.h"

#include <string>

#include "kernels/error.h"

namespace illm {

Dyadic dyadic_from_ratio(int64_t num, int64_t den, int32_t base, int mantissa_bits) {
  if (num < 1 || den < 1)
    throw Error("dyadic_from_ratio: numerator and denominator must be >= 1 (got " + std::to_string(num) + " / " +
                std::to_string(den) + ")");
  if (mantissa_bits < 1 || mantissa_bits > 32)
    throw Error("dyadic_from_ratio: mantissa_bits must be in [1, 32] (got " + std::to_string(mantissa_bits) + ")");
  if (den >= (int64_t{1} << (62 - mantissa_bits)))
    throw Error("dyadic_from_ratio: denominator " + std::to_string(den) + " too large for a " +
                std::to_string(mantissa_bits) + "-bit mantissa");
  const int64_t max_mantissa = (int64_t{1} << mantissa_bits) - 1;
  // Largest e with num·2^e / den <= 2^b_m − 1.
  const int e = flog2_ratio(max_mantissa * den, num);
  const __int128 n128 = num, d128 = den;
  const int64_t m = e >= 0 ? rdiv128(n128 << e, d128) : rdiv128(n128, d128 << -e);
  return Dyadic{m, base + e};
}

}  // namespace illm
