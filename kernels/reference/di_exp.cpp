#include "kernels/reference/di_exp.h"

#include <cassert>
#include <string>

#include "kernels/error.h"
#include "kernels/integer_math.h"

namespace illm {
namespace {
// Q14 coefficients of 2^u ≈ 1 + u·(a + b·u) on u ∈ (−1, 0]: a = 0.6724, b = 0.1722 (docs/method.md §4.3).
constexpr int64_t kQuadA = 11017;
constexpr int64_t kQuadB = 2821;
constexpr int kQuadFracBits = 14;
// Target width of |t| after promotion: msb(|t|) = 14 (|t| ∈ [2^13, 2^15) with the rounding of t).
constexpr int kTargetMsb = 14;
// Smallest mantissa the log2 e shifts see: 2^7 (the paper's 8-bit mantissas).
constexpr int kMinMantissaMsb = 7;
constexpr int64_t kMinMantissa = int64_t{1} << kMinMantissaMsb;
}  // namespace

int64_t di_exp_log2e_mantissa(int64_t m) { return m + (m >> 1) - (m >> 4); }

namespace {
// rdiv(2^e, d) in 128 bits (0 <= e < 120, d >= 1).
unsigned __int128 rdiv_pow2(int e, int64_t d) {
  const unsigned __int128 numerator = static_cast<unsigned __int128>(1) << e;
  const unsigned __int128 den = static_cast<uint64_t>(d);
  const unsigned __int128 q = numerator / den;
  return (numerator - q * den) * 2 >= den ? q + 1 : q;
}
}  // namespace

DiExpFrame di_exp_frame(int64_t m, int32_t k) {
  if (m < 1 || m >= (int64_t{1} << 40))
    throw Error("DI-Exp: scale mantissa must be in [1, 2^40) (got " + std::to_string(m) + ")");
  if (k < -64 || k >= 100) throw Error("DI-Exp: scale exponent must be in [-64, 100) (got " + std::to_string(k) + ")");
  // The shifts of m·log2 e need a few significant bits of m: widen a mantissa below 8 bits exactly
  // (m·2^w / 2^(k+w)). Mantissas from DI_REQUANT (b_m >= 8) are never touched.
  if (m < kMinMantissa) {
    const int widen = kMinMantissaMsb - msb(static_cast<uint64_t>(m));
    m <<= widen;
    k += widen;
  }
  const int64_t m_f = di_exp_log2e_mantissa(m);
  const unsigned __int128 steps = k >= 0 ? rdiv_pow2(k, m_f) : 0;
  const int32_t promote = steps >= 1 ? kTargetMsb - msb128(steps)
                                     : kTargetMsb + 1 + msb(static_cast<uint64_t>(m_f)) - k;
  if (promote > 40)
    throw Error("DI-Exp: input scale m/2^k = " + std::to_string(m) + "/2^" + std::to_string(k) +
                " is too coarse (promotion by more than 40 bits)");
  // 2^(k+P) / m_f ∈ [2^13, 2^15] by construction, so k + P ∈ [13, 15 + 40].
  DiExpFrame frame;
  frame.promote = promote;
  frame.t = -static_cast<int64_t>(rdiv_pow2(k + promote, m_f));
  return frame;
}

int64_t di_exp_promote(int64_t x, const DiExpFrame& frame) {
  assert(x <= 0);
  return frame.promote >= 0 ? shl(x, frame.promote) : rshr(x, -frame.promote);
}

int64_t di_exp(int64_t x, int64_t t, bool quadratic) {
  assert(x <= 0 && t < 0 && t > -(int64_t{1} << 16));
  const int64_t abs_t = -t;
  const int64_t q = (-x) / abs_t;  // both operands ≥ 0: truncation = floor = fdiv(x, t)
  if (q >= 63) return 0;
  const int64_t r = x + q * abs_t;  // ∈ (t, 0]
  int64_t e0;
  if (quadratic) {
    // |t|·(1 + a·u + b·u²) = |t| + r·(A·|t| + B·r) / (|t|·2^14); |numerator| < 2^15·2^30, one rounding.
    e0 = abs_t + rdiv(r * (kQuadA * abs_t + kQuadB * r), abs_t << kQuadFracBits);
    // The polynomial ends at 0.49976 (not ½) at u = −1; keep E0 ≥ ½ so that E stays monotone across octaves.
    if (e0 < (abs_t >> 1)) e0 = abs_t >> 1;
  } else {
    e0 = asr(r, 1) + abs_t;
  }
  return asr(e0, static_cast<int>(q));
}

}  // namespace illm
