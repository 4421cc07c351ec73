// Measured int8 peak of one thread: a loop of independent vpdpbusd zmm instructions (64 multiply-adds each, i.e.
// 128 integer operations). Compiled with -mavx512f -mavx512vnni (bench/CMakeLists.txt); call only when the CPU has it.
#include <immintrin.h>

#include <cstdint>

namespace illm::bench {

// Runs `iterations` rounds of 12 independent vpdpbusd and returns a value that depends on all of them (so that the
// loop is not optimized away). Multiply-adds executed: iterations · 12 · 64.
int64_t vpdpbusd_loop(int64_t iterations) {
  // Twelve named accumulators (an array would live in memory) with distinct starts (identical chains would be
  // merged by the compiler): enough independent chains to hide the latency.
  __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
          a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
          a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
          a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11);
  const __m512i x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iterations; ++i) {
    a0 = _mm512_dpbusd_epi32(a0, x, w);
    a1 = _mm512_dpbusd_epi32(a1, x, w);
    a2 = _mm512_dpbusd_epi32(a2, x, w);
    a3 = _mm512_dpbusd_epi32(a3, x, w);
    a4 = _mm512_dpbusd_epi32(a4, x, w);
    a5 = _mm512_dpbusd_epi32(a5, x, w);
    a6 = _mm512_dpbusd_epi32(a6, x, w);
    a7 = _mm512_dpbusd_epi32(a7, x, w);
    a8 = _mm512_dpbusd_epi32(a8, x, w);
    a9 = _mm512_dpbusd_epi32(a9, x, w);
    a10 = _mm512_dpbusd_epi32(a10, x, w);
    a11 = _mm512_dpbusd_epi32(a11, x, w);
  }
  const __m512i sum = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                       _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7))),
      _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  int64_t total = 0;
  for (const int32_t lane : lanes) total += lane;
  return total;
}

}  // namespace illm::bench
