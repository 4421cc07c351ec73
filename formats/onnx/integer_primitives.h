#pragma once
// The integer primitives of kernels/integer_math.h (fdiv, rdiv, cdiv, rshr, shl, msb, flog2_ratio, isqrt) as ONNX
// subgraphs on int64 tensors, exact for the stated domains (docs/onnx-export.md "Primitives").
//
// ONNX semantics they work around: integer Div's rounding is not pinned down by the standard (ONNX Runtime
// truncates), so every Div here has a non-negative dividend and a positive divisor; floor division of a signed
// value goes through Mod (fmod = 0, whose result has the divisor's sign, as the standard defines); BitShift exists
// for unsigned types only and is not used (shifts are multiplications and divisions by powers of two gathered from
// a table); integer Mul wraps on overflow, so every product has a proven 64-bit bound (stated per function).
#include <cstdint>
#include <vector>

#include "formats/onnx/graph_builder.h"

namespace illm::formats::onnx_export {

class IntegerPrimitives {
 public:
  explicit IntegerPrimitives(GraphBuilder& graph);
  GraphBuilder& g;

  Value pow2(const Value& s);  // 2^s for s ∈ [0, 62] (a Gather from the table 2^0 … 2^62)
  Value clamp(const Value& x, int64_t lo, int64_t hi);
  Value to_int64(const Value& boolean) { return g.cast(boolean, ElementType::kInt64); }

  // What the caller guarantees about the values a rounding shift sees; the cheaper forms need fewer operations on
  // what are often the largest tensors of the graph:
  //   kAny:         any int64 a: ⌊a / 2^s⌋ = (a − Mod(a, 2^s)) / 2^s, an exact division (4 operations)
  //   kBelow2To61:  |a| < 2^61: ⌊a / 2^s⌋ = (a + 2^62) / 2^s − 2^(62−s), a non-negative dividend (3 operations)
  //   kNonNegative: a >= 0: a / 2^s (2 operations)
  enum class Magnitude { kAny, kBelow2To61, kNonNegative };

  // ⌊a / 2^s⌋ for s ∈ [0, 62]; the constant form needs a ∈ [−2^62, 2^62).
  Value floor_div_pow2(const Value& a, const Value& s);
  Value floor_div_pow2(const Value& a, int s);
  // rshr(a, s) = ⌊(a + 2^(s−1)) / 2^s⌋ (s = 0: a), s ∈ [0, 62]; a + 2^(s−1) must fit int64 and lie within the
  // magnitude given. The constant form needs |a| < 2^61.
  Value rshr(const Value& a, const Value& s, Magnitude magnitude = Magnitude::kAny);
  Value rshr(const Value& a, int s);
  // rshr with a signed shift (negative = exact left shift by −s): rshr(a·2^min(max(−s,0), max_left), min(max(s,0),
  // max_right)). Equals the C++ rshr(a, s) when −s <= max_left and either s <= max_right or every |a| < 2^(max_right−1)
  // (then both give 0); the left-shifted value must fit int64 and lie within `magnitude`.
  Value shift_round(const Value& a, const Value& s, int max_left, int max_right, Magnitude magnitude = Magnitude::kAny);

  // ⌊log2 x⌋ for x ∈ [1, 2^(max_msb+1)), as Σ_{i=1..max_msb} [x ≥ 2^i]; max_msb <= 62.
  Value msb(const Value& x, int max_msb = 62);
  // Number of bits of x ∈ [0, 2^max_bits): Σ_{i=0..max_bits−1} [x ≥ 2^i] (0 for 0); max_bits <= 63.
  Value bit_length(const Value& x, int max_bits = 63);
  // ⌊log2(a / b)⌋ for a, b ∈ [1, 2^63): e = msb(a) − msb(b), minus 1 if a·2^max(−e,0) < b·2^max(e,0) (both sides
  // have the msb of the larger operand, so they fit int64: the 128-bit compare of the C++ is not needed).
  Value flog2_ratio(int64_t a, const Value& b);

  // Divisions with a >= 0 and b >= 1 (b may be a constant).
  Value rdiv(const Value& a, const Value& b);  // ⌊(a + ⌊b/2⌋) / b⌋ = half away from zero; a + b/2 must fit
  Value rdiv(const Value& a, int64_t b);
  Value cdiv(const Value& a, const Value& b);  // q + [a − q·b > 0], q = a / b (no a + b − 1 overflow)
  // rdiv for a signed dividend (a != INT64_MIN): a < 0 ? −rdiv(−a, b) : rdiv(a, b).
  Value rdiv_signed(const Value& a, const Value& b);

  // ⌊a·2^s / d⌋ and its remainder without a 128-bit product, by long division in steps: a ∈ [0, 2^a_bits),
  // d ∈ [1, 2^d_bits), s ∈ [0, max_shift] (clamped here), quotient < 2^62. Step 1 shifts a by up to 62 − a_bits,
  // every further step shifts the remainder (< d) by up to 62 − d_bits: q ← q·2^sh + ⌊r·2^sh / d⌋.
  struct Division {
    Value quotient, remainder;
  };
  Division shifted_division(const Value& a, int a_bits, const Value& s, int max_shift, const Value& d, int d_bits);

  // Maximum / minimum (keepdims) along `axis` of int64 values in [−2^62, 2^62), exactly, with int32 reductions only:
  // the high parts ⌊v / 2^31⌋ and the low parts v mod 2^31 both fit int32; max = 2^31·max(high) + the largest low
  // part among the values with that high part. For axes of symbolic size, where TopK cannot be used.
  Value wide_max(const Value& v, int64_t axis);
  Value wide_min(const Value& v, int64_t axis) { return g.neg(wide_max(g.neg(v), axis)); }

  // ⌊√n⌋ for n ∈ [0, 2^62], by six integer Newton steps from a power of two above √n (exact; proof in the .cpp).
  Value isqrt(const Value& n);

 private:
  Value power_table_;  // 2^0 … 2^62
};

// ⌊log2 x⌋ of a positive constant (export-time arithmetic).
int constant_msb(uint64_t x);

}  // namespace illm::formats::onnx_export
