#include "formats/onnx/integer_primitives.h"

#include <algorithm>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"

namespace illm::formats::onnx_export {
namespace {

constexpr int kMaxShift = 62;  // 2^62 is the largest power of two the tables hold (2^63 is not an int64)
constexpr int64_t kBias = int64_t{1} << 62;  // makes dividends of magnitude < 2^62 non-negative; a multiple of 2^s

std::vector<int64_t> powers_of_two(int first, int last) {
  std::vector<int64_t> p;
  for (int i = first; i <= last; ++i) p.push_back(int64_t{1} << i);
  return p;
}

}  // namespace

int constant_msb(uint64_t x) {
  if (x == 0) throw Error("ONNX export: msb of 0");
  return msb(x);
}

IntegerPrimitives::IntegerPrimitives(GraphBuilder& graph) : g(graph) {}

// The table is made on first use (an unused initializer would be flagged by ONNX Runtime).
Value IntegerPrimitives::pow2(const Value& s) {
  if (power_table_.name.empty()) power_table_ = g.vector(powers_of_two(0, kMaxShift));
  return g.gather(power_table_, s);
}

Value IntegerPrimitives::clamp(const Value& x, int64_t lo, int64_t hi) {
  return g.max(g.min(x, g.scalar(hi)), g.scalar(lo));
}

Value IntegerPrimitives::floor_div_pow2(const Value& a, const Value& s) {
  const Value d = pow2(s);
  return g.div(g.sub(a, g.mod(a, d)), d);
}

Value IntegerPrimitives::floor_div_pow2(const Value& a, int s) {
  if (s < 0 || s > kMaxShift) throw Error("ONNX export: constant shift " + std::to_string(s) + " outside [0, 62]");
  if (s == 0) return a;
  return g.sub(g.div(g.add(a, g.scalar(kBias)), g.scalar(int64_t{1} << s)), g.scalar(kBias >> s));
}

Value IntegerPrimitives::rshr(const Value& a, const Value& s, Magnitude magnitude) {
  // One Gather per call (on large tensors ONNX Runtime's Gather costs several elementwise operations): the half
  // step 2^(s−1) (0 for s = 0) and the bias 2^(62−s) are divisions of it.
  const Value step = pow2(s);
  const Value biased = g.add(a, g.div(step, g.scalar(2)));
  switch (magnitude) {
    case Magnitude::kNonNegative:
      return g.div(biased, step);
    case Magnitude::kBelow2To61:
      return g.sub(g.div(g.add(biased, g.scalar(kBias)), step), g.div(g.scalar(kBias), step));
    case Magnitude::kAny:
      break;
  }
  return g.div(g.sub(biased, g.mod(biased, step)), step);
}

Value IntegerPrimitives::rshr(const Value& a, int s) {
  if (s == 0) return a;
  return floor_div_pow2(g.add(a, g.scalar(int64_t{1} << (s - 1))), s);
}

Value IntegerPrimitives::shift_round(const Value& a, const Value& s, int max_left, int max_right, Magnitude magnitude) {
  if (max_left < 0 || max_left > kMaxShift || max_right < 0 || max_right > kMaxShift)
    throw Error("ONNX export: shift bounds outside [0, 62]");
  const Value left = clamp(g.neg(s), 0, max_left);
  const Value right = clamp(s, 0, max_right);
  return rshr(g.mul(a, pow2(left)), right, magnitude);
}

Value IntegerPrimitives::msb(const Value& x, int max_msb) {
  if (max_msb < 1 || max_msb > kMaxShift) throw Error("ONNX export: msb range outside [1, 62]");
  const Value thresholds = g.vector(powers_of_two(1, max_msb));
  return g.reduce_sum(to_int64(g.greater_equal(g.unsqueeze(x, {-1}), thresholds)), -1, false);
}

Value IntegerPrimitives::bit_length(const Value& x, int max_bits) {
  if (max_bits < 1 || max_bits > 63) throw Error("ONNX export: bit_length range outside [1, 63]");
  const Value thresholds = g.vector(powers_of_two(0, max_bits - 1));
  return g.reduce_sum(to_int64(g.greater_equal(g.unsqueeze(x, {-1}), thresholds)), -1, false);
}

Value IntegerPrimitives::flog2_ratio(int64_t a, const Value& b) {
  if (a < 1) throw Error("ONNX export: flog2_ratio of a non-positive constant");
  const Value e = g.sub(g.scalar(constant_msb(static_cast<uint64_t>(a))), msb(b));
  const Value lhs = g.mul(g.scalar(a), pow2(clamp(g.neg(e), 0, kMaxShift)));
  const Value rhs = g.mul(b, pow2(clamp(e, 0, kMaxShift)));
  return g.sub(e, to_int64(g.less(lhs, rhs)));
}

Value IntegerPrimitives::rdiv(const Value& a, const Value& b) { return g.div(g.add(a, g.div(b, g.scalar(2))), b); }

Value IntegerPrimitives::rdiv(const Value& a, int64_t b) {
  if (b < 1) throw Error("ONNX export: rdiv by a non-positive constant");
  if (b == 1) return a;
  return g.div(g.add(a, g.scalar(b / 2)), g.scalar(b));
}

Value IntegerPrimitives::cdiv(const Value& a, const Value& b) {
  const Value q = g.div(a, b);
  return g.add(q, to_int64(g.greater(g.sub(a, g.mul(q, b)), g.scalar(0))));
}

// Not Sign(a)·rdiv(|a|, b): ONNX Runtime 1.30's int64 Sign returns −1 for some positive values (e.g. 2^31 … 2^32 − 1).
Value IntegerPrimitives::rdiv_signed(const Value& a, const Value& b) {
  return g.where(g.less(a, g.scalar(0)), g.neg(rdiv(g.neg(a), b)), rdiv(a, b));
}

IntegerPrimitives::Division IntegerPrimitives::shifted_division(const Value& a, int a_bits, const Value& s,
                                                                int max_shift, const Value& d, int d_bits) {
  if (a_bits < 1 || a_bits > 62 || d_bits < 1 || d_bits > 61 || max_shift < 0)
    throw Error("ONNX export: shifted division bounds out of range");
  const int first_step = 62 - a_bits, next_step = 62 - d_bits;
  Value remaining = clamp(s, 0, max_shift);
  Value quotient, remainder;
  int covered = 0;
  bool first = true;
  while (first || covered < max_shift) {
    const int cap = first ? first_step : next_step;
    const Value shift = g.min(remaining, g.scalar(cap));
    remaining = g.sub(remaining, shift);
    const Value numerator = g.mul(first ? a : remainder, pow2(shift));  // < 2^62
    const Value q = g.div(numerator, d);
    remainder = g.sub(numerator, g.mul(q, d));
    quotient = first ? q : g.add(g.mul(quotient, pow2(shift)), q);
    covered += cap;
    first = false;
  }
  return Division{quotient, remainder};
}

Value IntegerPrimitives::wide_max(const Value& v, int64_t axis) {
  const Value high = floor_div_pow2(v, 31);                         // ∈ [−2^31, 2^31)
  const Value low = g.sub(v, g.mul(high, g.scalar(int64_t{1} << 31)));  // ∈ [0, 2^31)
  const Value top_high = g.reduce_max_int32(high, axis);
  const Value top_low = g.reduce_max_int32(g.where(g.equal(high, top_high), low, g.scalar(-1)), axis);
  return g.add(g.mul(top_high, g.scalar(int64_t{1} << 31)), top_low);
}

Value IntegerPrimitives::isqrt(const Value& n) {
  // Integer Newton steps x ← min(x, ⌊(x + ⌊n/x⌋)/2⌋) from x0 = 2^⌈b/2⌉ (b = bit length of n), so √n < x0 <= 2√n.
  // Every step stays >= ⌊√n⌋ (AM–GM) and decreases while x > ⌊√n⌋; x_k is at most the real Newton iterate r_k, whose
  // relative error from ε0 <= 1 falls as ε ← ε²/(2(1 + ε)): ε5 < 1.1·10^−15, so r5 − √n < 2^31·ε5 < 1, x5 <= ⌊√n⌋ + 1
  // and the sixth step gives ⌊√n⌋ exactly. (The kernel's bit-wise method computes the same ⌊√n⌋; 6 steps here take
  // 35 nodes instead of its 160.) n = 0 is handled separately (x0 = 1 there, and ⌊0/x⌋ needs x > 0).
  const Value positive = g.max(n, g.scalar(1));
  const Value half_bits = g.div(g.add(bit_length(positive), g.scalar(1)), g.scalar(2));  // ⌈b/2⌉ <= 31
  Value x = pow2(half_bits);
  for (int step = 0; step < 6; ++step)
    x = g.min(x, g.div(g.add(x, g.div(positive, x)), g.scalar(2)));  // x >= ⌊√n⌋ >= 1: no division by 0
  return g.where(g.equal(n, g.scalar(0)), g.scalar(0), x);
}

}  // namespace illm::formats::onnx_export
