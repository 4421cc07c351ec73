#pragma once
// Integer primitives of the numerics (docs/method.md §1.2, normative; docs/integer-semantics.md "## Primitives").
// Every rounding in kernels/ goes through these functions; never use C++ `/` or `>>` on possibly negative
// values elsewhere. All functions are integer-only and constexpr.
#include <cassert>
#include <cstdint>
#include <limits>

namespace illm {

// Floor division (rounds toward −∞), b > 0.
constexpr inline int64_t fdiv(int64_t a, int64_t b) {
  assert(b > 0);
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// Rounded division, ties away from zero: sign(a)·((|a| + b/2) / b), b > 0.
// Written with the remainder so that |a| + b/2 never overflows.
constexpr inline int64_t rdiv(int64_t a, int64_t b) {
  assert(b > 0);
  const int64_t q = a / b;  // truncated toward 0
  const int64_t r = a % b;  // same sign as a
  const int64_t abs_r = r < 0 ? -r : r;
  // |r| >= b − b/2  ⇔  |r| + b/2 >= b (the rounding carries one more unit away from zero).
  if (abs_r >= b - b / 2) return a < 0 ? q - 1 : q + 1;
  return q;
}

// Ceiling division (rounds toward +∞), b > 0.
constexpr inline int64_t cdiv(int64_t a, int64_t b) {
  assert(b > 0);
  const int64_t q = a / b;
  return (a % b != 0 && a > 0) ? q + 1 : q;
}

// Arithmetic shift right = fdiv(a, 2^s) (floor), s >= 0; s >= 63 gives 0 or −1.
constexpr inline int64_t asr(int64_t a, int s) {
  assert(s >= 0);
  if (s >= 63) return a < 0 ? -1 : 0;
  return a >> s;  // C++20: >> of a negative value is arithmetic (floor)
}

// Left shift as an exact multiplication a·2^s, s >= 0 (asserts no overflow in debug builds).
constexpr inline int64_t shl(int64_t a, int s) {
  assert(s >= 0);
  if (a == 0) return 0;
  assert(s <= 63);
  assert(a <= (std::numeric_limits<int64_t>::max() >> s) && a >= (std::numeric_limits<int64_t>::min() >> s));
  return static_cast<int64_t>(static_cast<uint64_t>(a) << s);
}

// Rounding shift right, ties toward +∞ ("round half up"): s >= 1: asr(a + 2^(s−1), s); s = 0: a;
// s < 0: shl(a, −s). The half is added in 128 bits so a near INT64_MAX does not overflow; s >= 64 gives 0.
constexpr inline int64_t rshr(int64_t a, int s) {
  if (s == 0) return a;
  if (s < 0) return shl(a, -s);
  if (s >= 64) return 0;  // |a| < 2^63 <= 2^(s−1): a + 2^(s−1) ∈ [0, 2^s) floors to 0
  const __int128 biased = static_cast<__int128>(a) + (static_cast<__int128>(1) << (s - 1));
  return static_cast<int64_t>(biased >> s);
}

// ⌊log2 x⌋ for x >= 1 (exact: 63 − count of leading zeros).
constexpr inline int msb(uint64_t x) {
  assert(x >= 1);
  return 63 - __builtin_clzll(x);
}

// ⌊log2 x⌋ for an unsigned 128-bit x >= 1 (exact).
constexpr inline int msb128(unsigned __int128 x) {
  assert(x >= 1);
  const uint64_t high = static_cast<uint64_t>(x >> 64);
  return high != 0 ? 64 + msb(high) : msb(static_cast<uint64_t>(x));
}

// ⌊log2(a/b)⌋ exactly, a, b >= 1 (no rounding: the shifted compare is done in 128 bits).
constexpr inline int flog2_ratio(int64_t a, int64_t b) {
  assert(a >= 1 && b >= 1);
  int e = msb(static_cast<uint64_t>(a)) - msb(static_cast<uint64_t>(b));
  const unsigned __int128 ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  const bool below = e >= 0 ? ua < (ub << e) : (ua << -e) < ub;
  return below ? e - 1 : e;
}

// Clamp x to [lo, hi] (saturation; no rounding).
constexpr inline int64_t sat(int64_t x, int64_t lo, int64_t hi) {
  assert(lo <= hi);
  return x < lo ? lo : (x > hi ? hi : x);
}

// Rounded division of 128-bit operands, ties away from zero, b > 0; the quotient must fit int64 (asserted).
constexpr inline int64_t rdiv128(__int128 a, __int128 b) {
  assert(b > 0);
  __int128 q = a / b;
  const __int128 r = a % b;
  const __int128 abs_r = r < 0 ? -r : r;
  if (abs_r >= b - b / 2) q += a < 0 ? -1 : 1;
  assert(q >= std::numeric_limits<int64_t>::min() && q <= std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(q);
}

// ⌊√n⌋ exactly, by the bit-wise check (digit-by-digit) method of §5.3: shifts, adds and compares only.
constexpr inline uint64_t isqrt(uint64_t n) {
  uint64_t res = 0;
  uint64_t bit = uint64_t{1} << 62;
  while (bit > n) bit >>= 2;
  while (bit != 0) {
    if (n >= res + bit) {
      n -= res + bit;
      res = (res >> 1) + bit;
    } else {
      res >>= 1;
    }
    bit >>= 2;
  }
  return res;
}

// Saturating cast to an integer type T: values outside T's range clamp to its min/max (no rounding).
template <typename T>
constexpr inline T saturate_cast(int64_t x) {
  static_assert(std::numeric_limits<T>::is_integer);
  constexpr int64_t lo = static_cast<int64_t>(std::numeric_limits<T>::min());
  constexpr int64_t hi = std::numeric_limits<T>::digits >= 63 ? std::numeric_limits<int64_t>::max()
                                                              : static_cast<int64_t>(std::numeric_limits<T>::max());
  return static_cast<T>(sat(x, lo, hi));
}

}  // namespace illm
