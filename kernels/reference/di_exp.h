#pragma once
// DI-Exp: the integer exponential of I-LLM (docs/method.md §4.3, paper Appendix Algorithm 1), with the project's
// input promotion and second-order 2^u (§9.1). Integer-only. Exact definition: docs/integer-semantics.md "## DI-Exp".
//
// Input: an integer x ≤ 0 with dyadic scale m / 2^k (real x·m/2^k). Output: E ≥ 0 with e^(real x) ≈ E / |t|.
// The implicit output scale 1/|t| is not dyadic; it cancels in the softmax and sigmoid ratios.
//
// Usage per row (one scale): `DiExpFrame f = di_exp_frame(m, k);` then for every element
// `di_exp(di_exp_promote(x, f), f.t, quadratic)`.
#include <cstdint>

namespace illm {

// m·log2(e) with log2 e ≈ 1 + 1/2 − 1/16 = 1.4375 (paper): m_f = m + (m >> 1) − (m >> 4), m >= 1.
int64_t di_exp_log2e_mantissa(int64_t m);

// Everything DI-Exp derives from one input scale m / 2^k.
struct DiExpFrame {
  int32_t promote = 0;  // P: inputs are promoted as x ← shl(x, P) (P ≥ 0) or rshr(x, −P) (P < 0)
  int64_t t = 0;        // t = −rdiv(2^(k+P), m_f) < 0; |t| = input steps per octave = the output's 1.0
};

// A mantissa m < 2^7 is first widened exactly to 8 bits (m ← m·2^w, k ← k + w) so that the shifts of m_f keep
// log2 e (DI_REQUANT never emits such an m). Promotion rule (§4.3, §9.1): P = 14 − msb(rdiv(2^k, m_f)), which puts |t| in [2^13, 2^15). When
// rdiv(2^k, m_f) = 0 (a scale above ~1.4 per step, or k < 0) the rule is continued as P = 15 + msb(m_f) − k,
// giving |t| ∈ [2^14, 2^15]. Requires 1 <= m < 2^40, −64 <= k < 100 and P <= 40 (throws illm::Error otherwise).
DiExpFrame di_exp_frame(int64_t m, int32_t k);

// x promoted to the frame's resolution: shl(x, P) for P ≥ 0, rshr(x, −P) for P < 0. Requires x ≤ 0 and
// (for P > 0) |x| < 2^(62−P) (asserted).
int64_t di_exp_promote(int64_t x, const DiExpFrame& frame);

// DI-Exp of a promoted x ≤ 0 with t < 0 (|t| < 2^16):
//   q = fdiv(−x, |t|), r = x + q·|t| ∈ (t, 0]
//   linear (paper):     E0 = asr(r, 1) + |t|                                    (2^u ≈ 1 + u/2)
//   quadratic (default): E0 = max(|t| + rdiv(r·(A·|t| + B·r), |t|·2^14), |t| >> 1), A = 11017, B = 2821
//                        (2^u ≈ 1 + u·(0.6724 + 0.1722·u) with u = r/|t|)
//   E = asr(E0, q), and E = 0 when q ≥ 63.
// E(0) = |t|, E(t) = |t| >> 1, and E is non-increasing in x (both forms).
int64_t di_exp(int64_t x, int64_t t, bool quadratic);

}  // namespace illm
