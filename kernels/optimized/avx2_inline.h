#pragma once
// Inline helpers of the AVX2 kernels (act_group_dot_avx2.cpp, grouped_dot_avx2.cpp). Include only from files
// compiled with -mavx2: the code below is emitted with those instructions.
#include <immintrin.h>

namespace illm::optimized::avx2 {

// One weight row's 32 bytes as two operands: the low and high nibbles (packed 4-bit codes), or the bytes
// zero-extended to int16 in vpunpck order (bytes 0..7 | 16..23 and 8..15 | 24..31).
template <bool PACKED>
inline void weight_operands(__m256i bytes, __m256i& u, __m256i& v) {
  if constexpr (PACKED) {
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    u = _mm256_and_si256(bytes, low_nibble);
    v = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibble);
  } else {
    const __m256i zero = _mm256_setzero_si256();
    u = _mm256_unpacklo_epi8(bytes, zero);
    v = _mm256_unpackhi_epi8(bytes, zero);
  }
}

}  // namespace illm::optimized::avx2
