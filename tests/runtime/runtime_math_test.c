/* The runtime's exact 128-bit helpers and integer primitives (runtime/illm_rt_math.h) against the host compiler's
 * unsigned __int128 and the reference definitions of kernels/integer_math.h (floor, rounding and ceiling divisions,
 * rounding shifts, floor(log2) of ratios), on edge values and 200000 random values of every magnitude. */
#include <stdint.h>
#include <stdio.h>

#include "runtime/illm_rt_math.h"

typedef unsigned __int128 u128;

static int failures = 0, checks = 0;

#define CHECK(cond, ...)                     \
  do {                                       \
    ++checks;                                \
    if (!(cond)) {                           \
      if (failures < 20) {                   \
        printf("FAIL %s:%d: ", __FILE__, __LINE__); \
        printf(__VA_ARGS__);                 \
        printf("\n");                        \
      }                                      \
      ++failures;                            \
    }                                        \
  } while (0)

static uint64_t state = 0x9E3779B97F4A7C15u;
static uint64_t next64(void) { /* splitmix64 */
  uint64_t z = (state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}
/* A value of random magnitude: uniform bit length 0..64, then random bits. */
static uint64_t random_magnitude(void) {
  const int bits = (int)(next64() % 65);
  return bits == 0 ? 0 : (bits == 64 ? next64() : next64() & (((uint64_t)1 << bits) - 1));
}
static int64_t random_signed(void) { return (int64_t)random_magnitude() * ((next64() & 1) ? -1 : 1); }

static u128 to_native(rt_u128 a) { return ((u128)a.hi << 64) | a.lo; }
static rt_u128 from_native(u128 a) {
  rt_u128 r;
  r.hi = (uint64_t)(a >> 64);
  r.lo = (uint64_t)a;
  return r;
}
static u128 random_u128(void) {
  const int bits = (int)(next64() % 129);
  u128 v = ((u128)next64() << 64) | next64();
  return bits == 128 ? v : (bits == 0 ? 0 : v & (((u128)1 << bits) - 1));
}

/* Reference definitions in 128-bit arithmetic (kernels/integer_math.h). */
static int64_t ref_rshr(int64_t a, int s) {
  if (s == 0) return a;
  if (s < 0) return (int64_t)((uint64_t)a << -s);
  if (s >= 64) return 0;
  return (int64_t)(((__int128)a + ((__int128)1 << (s - 1))) >> s);
}
static int64_t ref_fdiv(int64_t a, int64_t b) {
  __int128 q = (__int128)a / b;
  if ((__int128)a % b != 0 && a < 0) --q;
  return (int64_t)q;
}
static int ref_flog2_ratio(int64_t a, int64_t b) {
  int e = 0;
  /* Largest e with b 2^e <= a, exactly. */
  while (((u128)b << (e + 1)) <= (u128)a && e < 62) ++e;
  while (e > -63 && ((u128)b << (e < 0 ? 0 : e)) > ((u128)a << (e < 0 ? -e : 0))) --e;
  return e;
}

static void test_u128(void) {
  int i;
  for (i = 0; i < 200000; ++i) {
    const u128 a = random_u128(), b = random_u128();
    const int s = (int)(next64() % 140);
    rt_u128 r;
    CHECK(to_native(rt_u128_add(from_native(a), from_native(b))) == a + b, "add");
    CHECK(to_native(rt_u128_sub(from_native(a), from_native(b))) == a - b, "sub");
    CHECK(rt_u128_cmp(from_native(a), from_native(b)) == (a < b ? -1 : (a > b ? 1 : 0)), "cmp");
    CHECK(to_native(rt_u128_shl(from_native(a), s)) == (s >= 128 ? 0 : a << s), "shl %d", s);
    CHECK(to_native(rt_u128_shr(from_native(a), s)) == (s >= 128 ? 0 : a >> s), "shr %d", s);
    {
      const uint64_t x = random_magnitude(), y = random_magnitude();
      CHECK(to_native(rt_u128_mul64(x, y)) == (u128)x * y, "mul64");
    }
    if (b != 0) {
      const rt_u128 q = rt_u128_divmod(from_native(a), from_native(b), &r);
      CHECK(to_native(q) == a / b && to_native(r) == a % b, "divmod");
      CHECK(to_native(rt_u128_cdiv(from_native(a), from_native(b))) == a / b + (a % b != 0), "cdiv");
      CHECK(to_native(rt_u128_rdiv(from_native(a), from_native(b))) == a / b + (a % b >= b - b / 2), "rdiv");
    }
    if (a != 0) {
      int msb = 127;
      while (!((a >> msb) & 1)) --msb;
      CHECK(rt_u128_msb(from_native(a)) == msb, "msb");
    }
  }
  /* Edges. */
  {
    const u128 max = ~(u128)0;
    rt_u128 r;
    CHECK(to_native(rt_u128_divmod(from_native(max), from_native(1), &r)) == max, "max/1");
    CHECK(to_native(rt_u128_divmod(from_native(max), from_native(max), &r)) == 1 && to_native(r) == 0, "max/max");
    CHECK(to_native(rt_u128_add(from_native(max), from_native(1))) == 0, "wrap");
    CHECK(to_native(rt_u128_mul64(UINT64_MAX, UINT64_MAX)) == (u128)UINT64_MAX * UINT64_MAX, "mul max");
    CHECK(rt_u128_msb(from_native(0)) == -1, "msb 0");
  }
}

static void test_primitives(void) {
  int i;
  static const int64_t edges[] = {0, 1, -1, 2, -2, 3, -3, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
                                  (int64_t)1 << 62, -((int64_t)1 << 62), ((int64_t)1 << 31) - 1, -((int64_t)1 << 31)};
  const size_t n_edges = sizeof edges / sizeof edges[0];
  size_t e;
  for (e = 0; e < n_edges; ++e) {
    int s;
    for (s = 0; s <= 70; ++s) {
      CHECK(rt_rshr(edges[e], s) == ref_rshr(edges[e], s), "rshr(%lld, %d)", (long long)edges[e], s);
      CHECK(rt_asr(edges[e], s) == (s >= 63 ? (edges[e] < 0 ? -1 : 0) : edges[e] >> s), "asr");
    }
  }
  for (i = 0; i < 200000; ++i) {
    const int64_t a = random_signed();
    int64_t b = (int64_t)(random_magnitude() >> 1);
    const int s = (int)(next64() % 70);
    CHECK(rt_rshr(a, s) == ref_rshr(a, s), "rshr(%lld, %d)", (long long)a, s);
    CHECK(rt_asr(a, s) == (s >= 63 ? (a < 0 ? -1 : 0) : a >> s), "asr");  /* gcc: >> is arithmetic */
    CHECK(rt_i64_from_bits((uint64_t)a) == a, "bits");
    if (b == 0) b = 1;
    CHECK(rt_fdiv(a, b) == ref_fdiv(a, b), "fdiv(%lld, %lld)", (long long)a, (long long)b);
    {
      /* rdiv: ties away from zero: sign(a) floor((|a| + floor(b/2)) / b) in 128 bits. */
      const __int128 abs_a = a < 0 ? -(__int128)a : a;
      const __int128 q = (abs_a + b / 2) / b;
      CHECK(rt_rdiv(a, b) == (int64_t)(a < 0 ? -q : q), "rdiv(%lld, %lld)", (long long)a, (long long)b);
    }
    if (a > 0) {
      const int64_t p = a, d = b;
      CHECK(rt_flog2_ratio(p, d) == ref_flog2_ratio(p, d), "flog2_ratio(%lld, %lld)", (long long)p, (long long)d);
    }
    {
      const uint64_t x = random_magnitude();
      const uint64_t r = rt_isqrt(x);
      CHECK((u128)r * r <= x && (u128)(r + 1) * (r + 1) > x, "isqrt(%llu)", (unsigned long long)x);
      CHECK(rt_msb(x) == (x == 0 ? -1 : 63 - __builtin_clzll(x)), "msb");
    }
  }
}

int main(void) {
  test_u128();
  test_primitives();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
