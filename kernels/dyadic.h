#pragma once
// Dyadic numbers m / 2^k (docs/method.md §1.4; docs/integer-semantics.md "## Dyadic numbers"): every scale of the
// integer model is one. Multiplying by one is one integer multiply and one rounding shift.
#include <cassert>
#include <cstdint>

#include "kernels/integer_math.h"

namespace illm {

// A dyadic number m / 2^k (docs/method.md §1.4). m >= 0 (m >= 1 for a scale); k may be negative.
struct Dyadic {
  int64_t m = 1;
  int32_t k = 0;
  friend bool operator==(const Dyadic&, const Dyadic&) = default;
};

// The dyadic with the largest mantissa of at most `mantissa_bits` bits that represents
// s = num / (den · 2^base): k = base + ⌊log2((2^b_m − 1)·den / num)⌋, m = rdiv(num·2^(k−base), den)
// (rounded half away from zero, so m ∈ [≈2^(b_m−1), 2^b_m − 1]). Requires num, den >= 1,
// 1 <= mantissa_bits <= 32 and den < 2^(62 − mantissa_bits); throws illm::Error otherwise.
Dyadic dyadic_from_ratio(int64_t num, int64_t den, int32_t base, int mantissa_bits);

// v · m / 2^k rounded half up (rshr of the exact 128-bit product); the result must fit int64 (asserted).
inline int64_t apply_dyadic(int64_t v, Dyadic d) {
  const __int128 product = static_cast<__int128>(v) * d.m;
  if (d.k <= 0) {
    assert(-d.k <= 62);
    const __int128 r = product * (static_cast<__int128>(1) << -d.k);  // exact multiplication by 2^−k
    assert(r >= INT64_MIN && r <= INT64_MAX);
    return static_cast<int64_t>(r);
  }
  if (d.k >= 127) return 0;
  const __int128 r = (product + (static_cast<__int128>(1) << (d.k - 1))) >> d.k;  // floor shift of a signed value
  assert(r >= INT64_MIN && r <= INT64_MAX);
  return static_cast<int64_t>(r);
}

}  // namespace illm

// DI_REQUANT (the dynamic requantization that emits codes with a dyadic scale) is built on the above;
// it is declared in kernels/requant.h and made available to every includer of this header.
#include "kernels/requant.h"
