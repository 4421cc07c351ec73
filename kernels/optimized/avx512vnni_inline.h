#pragma once
// Inline helpers of the AVX-512 VNNI kernels (dot_block_avx512vnni.cpp, grouped_dot_avx512vnni.cpp). Include only
// from files compiled with the AVX-512 VNNI flags: the code below is emitted with those instructions.

// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_* placeholders, GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/optimized/dot_block.h"

namespace illm::optimized::vnni {

constexpr int kStepBytes = 64;  // weight bytes per vector step

// acc += Σ of four u8·s8 products per int32 lane (vpdpbusd acc, u8, s8). Written as a one-instruction asm with a
// tied accumulator: GCC 12's builtin makes the register allocator copy every accumulator around each instruction.
inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
}

// Lane q·4 + (0, 1, 2, 3) = the sums of the four int32 lanes of 128-bit lane q of (a, b, c, d).
inline __m512i lane_sums4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// The byte mask of a step with `left` weight bytes left in the row.
inline __mmask64 step_mask(int32_t left) { return left >= kStepBytes ? ~__mmask64{0} : (__mmask64{1} << left) - 1; }

// How a weight format's bytes meet vpdpbusd: as signed bytes, flipped to code − 128, or split into nibbles.
enum class Kind { kBytes, kBytesXor, kPacked4 };

inline Kind kind_of(WeightFormat format) {
  switch (format) {
    case WeightFormat::kBytes7: return Kind::kBytes;
    case WeightFormat::kBytes8: return Kind::kBytesXor;
    case WeightFormat::kPacked4: return Kind::kPacked4;
  }
  return Kind::kBytes;
}

}  // namespace illm::optimized::vnni
