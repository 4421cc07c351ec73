/* Integer primitives of the illm C99 runtime: the C counterparts of kernels/integer_math.h, plus exact unsigned
 * 128-bit helpers built on 64-bit halves (C99 on 32-bit ARM and Cortex-M has no __int128).
 *
 * Internal header of the runtime core (illm_rt.c, illm_rt_tokenizer.c); not part of the public API. Everything is
 * static inline, integer-only and freestanding (<stdint.h> only). Signed arithmetic is written so that it never
 * overflows: where the C++ reference relies on a proven bound, the C code computes through uint64_t (wrapping), which
 * gives the same value whenever the bound holds and no undefined behaviour when a corrupted model breaks it.
 * Tests: tests/runtime/runtime_math_test.c checks every helper against __int128 on the host. */
#ifndef ILLM_RT_MATH_H
#define ILLM_RT_MATH_H

#include <stdint.h>

/* Two's complement conversion of a uint64_t bit pattern to int64_t, without implementation-defined behaviour. */
static inline int64_t rt_i64_from_bits(uint64_t u) {
  return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

/* Wrapping add / sub / mul: equal to the exact result whenever it fits int64_t. */
static inline int64_t rt_add(int64_t a, int64_t b) { return rt_i64_from_bits((uint64_t)a + (uint64_t)b); }
static inline int64_t rt_sub(int64_t a, int64_t b) { return rt_i64_from_bits((uint64_t)a - (uint64_t)b); }
static inline int64_t rt_mul(int64_t a, int64_t b) { return rt_i64_from_bits((uint64_t)a * (uint64_t)b); }

/* |a| as uint64_t (|INT64_MIN| = 2^63 fits). */
static inline uint64_t rt_abs_u64(int64_t a) { return a < 0 ? (uint64_t)0 - (uint64_t)a : (uint64_t)a; }

/* Floor division, b > 0 (C99 '/' truncates toward zero). */
static inline int64_t rt_fdiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Rounded division, ties away from zero, b > 0 (kernels/integer_math.h rdiv). */
static inline int64_t rt_rdiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  const int64_t r = a % b;
  const int64_t abs_r = r < 0 ? -r : r;
  if (abs_r >= b - b / 2) return a < 0 ? q - 1 : q + 1;
  return q;
}

/* Arithmetic shift right = floor(a / 2^s), s >= 0; s >= 63 gives 0 or -1. Written without '>>' on a negative
 * value (implementation-defined in C99); compilers turn it into one arithmetic shift. */
static inline int64_t rt_asr(int64_t a, int s) {
  if (s >= 63) return a < 0 ? -1 : 0;
  if (s <= 0) return a;
  return a >= 0 ? (int64_t)((uint64_t)a >> s) : -(int64_t)(((uint64_t)(-(a + 1))) >> s) - 1;
}

/* a * 2^s (s >= 0), wrapping modulo 2^64 like the reference's release build; s >= 64 gives 0. */
static inline int64_t rt_shl(int64_t a, int s) {
  if (a == 0 || s >= 64) return 0;
  if (s <= 0) return a;
  return rt_i64_from_bits((uint64_t)a << s);
}

/* Rounding shift right, ties toward +inf: s >= 1: floor((a + 2^(s-1)) / 2^s) (exact, no 128-bit sum needed:
 * = asr(a, s) + bit s-1 of a); s = 0: a; s < 0: shl(a, -s); s >= 64: 0. */
static inline int64_t rt_rshr(int64_t a, int s) {
  if (s == 0) return a;
  if (s < 0) return rt_shl(a, -s);
  if (s >= 64) return 0;
  return rt_asr(a, s) + (int64_t)(((uint64_t)a >> (s - 1)) & 1u);
}

/* floor(log2 x), x >= 1 (returns -1 for 0). */
static inline int rt_msb(uint64_t x) {
  int n = 0;
  if (x == 0) return -1;
  if (x >> 32) { x >>= 32; n += 32; }
  if (x >> 16) { x >>= 16; n += 16; }
  if (x >> 8) { x >>= 8; n += 8; }
  if (x >> 4) { x >>= 4; n += 4; }
  if (x >> 2) { x >>= 2; n += 2; }
  if (x >> 1) { n += 1; }
  return n;
}

/* Number of bits of x (0 for 0). */
static inline int rt_bit_length(uint64_t x) { return rt_msb(x) + 1; }

static inline int64_t rt_sat(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }
static inline int64_t rt_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t rt_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* floor(sqrt(n)) by the digit-by-digit method (kernels/integer_math.h isqrt). */
static inline uint64_t rt_isqrt(uint64_t n) {
  uint64_t res = 0;
  uint64_t bit = (uint64_t)1 << 62;
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

/* ---- Unsigned 128-bit integers on two 64-bit halves ---------------------------------------------------------- */

typedef struct {
  uint64_t hi;
  uint64_t lo;
} rt_u128;

static inline rt_u128 rt_u128_from(uint64_t x) {
  rt_u128 r;
  r.hi = 0;
  r.lo = x;
  return r;
}

static inline int rt_u128_is_zero(rt_u128 a) { return a.hi == 0 && a.lo == 0; }

/* -1, 0, 1 as a <, ==, > b. */
static inline int rt_u128_cmp(rt_u128 a, rt_u128 b) {
  if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
  if (a.lo != b.lo) return a.lo < b.lo ? -1 : 1;
  return 0;
}

/* a << s modulo 2^128, 0 <= s. */
static inline rt_u128 rt_u128_shl(rt_u128 a, int s) {
  rt_u128 r;
  if (s <= 0) return a;
  if (s >= 128) return rt_u128_from(0);
  if (s >= 64) {
    r.hi = a.lo << (s - 64);
    r.lo = 0;
  } else {
    r.hi = (a.hi << s) | (a.lo >> (64 - s));
    r.lo = a.lo << s;
  }
  return r;
}

static inline rt_u128 rt_u128_shr(rt_u128 a, int s) {
  rt_u128 r;
  if (s <= 0) return a;
  if (s >= 128) return rt_u128_from(0);
  if (s >= 64) {
    r.lo = a.hi >> (s - 64);
    r.hi = 0;
  } else {
    r.lo = (a.lo >> s) | (a.hi << (64 - s));
    r.hi = a.hi >> s;
  }
  return r;
}

static inline rt_u128 rt_u128_add(rt_u128 a, rt_u128 b) {
  rt_u128 r;
  r.lo = a.lo + b.lo;
  r.hi = a.hi + b.hi + (r.lo < a.lo ? 1u : 0u);
  return r;
}

static inline rt_u128 rt_u128_sub(rt_u128 a, rt_u128 b) {
  rt_u128 r;
  r.lo = a.lo - b.lo;
  r.hi = a.hi - b.hi - (a.lo < b.lo ? 1u : 0u);
  return r;
}

/* Exact 64 x 64 -> 128-bit product on 32-bit halves. */
static inline rt_u128 rt_u128_mul64(uint64_t a, uint64_t b) {
  const uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32, b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
  const uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
  const uint64_t middle = (p0 >> 32) + (p1 & 0xFFFFFFFFu) + (p2 & 0xFFFFFFFFu);
  rt_u128 r;
  r.lo = (p0 & 0xFFFFFFFFu) | (middle << 32);
  r.hi = p3 + (p1 >> 32) + (p2 >> 32) + (middle >> 32);
  return r;
}

/* floor(log2 a), a >= 1 (-1 for 0). */
static inline int rt_u128_msb(rt_u128 a) { return a.hi != 0 ? 64 + rt_msb(a.hi) : rt_msb(a.lo); }

/* Quotient and remainder of a / b, b != 0 (shift-subtract long division: used per row, never per element). */
static inline rt_u128 rt_u128_divmod(rt_u128 a, rt_u128 b, rt_u128* remainder) {
  rt_u128 q = rt_u128_from(0), r = a;
  if (rt_u128_cmp(a, b) >= 0) {
    int shift = rt_u128_msb(a) - rt_u128_msb(b);
    rt_u128 d = rt_u128_shl(b, shift);
    for (; shift >= 0; --shift) {
      q = rt_u128_shl(q, 1);
      if (rt_u128_cmp(r, d) >= 0) {
        r = rt_u128_sub(r, d);
        q.lo |= 1u;
      }
      d = rt_u128_shr(d, 1);
    }
  }
  if (remainder) *remainder = r;
  return q;
}

/* Rounded division of non-negative 128-bit values, ties away from zero (kernels/integer_math.h rdiv128 on
 * non-negative operands). */
static inline rt_u128 rt_u128_rdiv(rt_u128 a, rt_u128 b) {
  rt_u128 r;
  rt_u128 q = rt_u128_divmod(a, b, &r);
  /* r >= b - floor(b/2) */
  if (rt_u128_cmp(r, rt_u128_sub(b, rt_u128_shr(b, 1))) >= 0) q = rt_u128_add(q, rt_u128_from(1));
  return q;
}

/* Ceiling division of non-negative 128-bit values. */
static inline rt_u128 rt_u128_cdiv(rt_u128 a, rt_u128 b) {
  rt_u128 r;
  rt_u128 q = rt_u128_divmod(a, b, &r);
  if (!rt_u128_is_zero(r)) q = rt_u128_add(q, rt_u128_from(1));
  return q;
}

/* True when a fits in [0, 2^63). */
static inline int rt_u128_fits_i64(rt_u128 a) { return a.hi == 0 && a.lo <= (uint64_t)INT64_MAX; }

/* floor(log2(a / b)) exactly, a, b >= 1 (kernels/integer_math.h flog2_ratio). */
static inline int rt_flog2_ratio(int64_t a, int64_t b) {
  const int e = rt_msb((uint64_t)a) - rt_msb((uint64_t)b);
  const rt_u128 ua = rt_u128_from((uint64_t)a), ub = rt_u128_from((uint64_t)b);
  const int below = e >= 0 ? rt_u128_cmp(ua, rt_u128_shl(ub, e)) < 0 : rt_u128_cmp(rt_u128_shl(ua, -e), ub) < 0;
  return below ? e - 1 : e;
}

#endif /* ILLM_RT_MATH_H */
