// AVX-512 VNNI dot blocks: vpdpbusd (unsigned activation bytes × signed weight bytes, four products summed into each
// int32 lane, no saturation) on register tiles of up to 4 activation rows × 4 weight rows, 64 weight bytes per step.
// Weights are read in their storage layout: bytes of codes <= 127 directly, 8-bit codes flipped to code − 128 by
// one xor (the caller adds 128·Σx back), packed 4-bit codes split into low and high nibbles by a mask and a shift
// (the activations of each 128-code block are stored even codes first, then odd codes, so both halves line up).
// The row tail is read with a byte-masked load: nothing past a weight row's last byte is read.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni; called only when the CPU has them.
#include <immintrin.h>

#include "kernels/optimized/dot_block.h"

namespace illm::optimized {
namespace {

constexpr int kStepBytes = 64;

// (Σ lanes of a, Σ b, Σ c, Σ d).
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  const __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}

template <int MR, int NR>
inline void store_tile(__m512i (&acc)[MR][NR], int32_t* c, size_t c_stride, bool accumulate) {
  const __m512i zero = _mm512_setzero_si512();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; j += 4) {
      const int count = NR - j < 4 ? NR - j : 4;
      const __m128i sums = reduce4(acc[i][j], count > 1 ? acc[i][j + 1] : zero, count > 2 ? acc[i][j + 2] : zero,
                                   count > 3 ? acc[i][j + 3] : zero);
      int32_t* out = c + static_cast<size_t>(i) * c_stride + j;
      const __mmask8 lanes = static_cast<__mmask8>((1u << count) - 1);
      const __m128i previous = accumulate ? _mm_maskz_loadu_epi32(lanes, out) : _mm_setzero_si128();
      _mm_mask_storeu_epi32(out, lanes, _mm_add_epi32(previous, sums));
    }
}

// One MR × NR tile over k codes of byte weights (XOR: flip the top bit, code → code − 128).
template <int MR, int NR, bool XOR>
void tile_bytes(const DotBlockArgs& a, const uint8_t* x, const uint8_t* w, int32_t* c) {
  __m512i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int32_t bytes = a.k;
  const auto step = [&](int32_t offset, __mmask64 mask) {
    __m512i xv[MR];
    for (int i = 0; i < MR; ++i) xv[i] = _mm512_loadu_si512(x + static_cast<size_t>(i) * a.x_stride + offset);
    for (int j = 0; j < NR; ++j) {
      __m512i wv = _mm512_maskz_loadu_epi8(mask, w + static_cast<size_t>(j) * a.w_stride + offset);
      if (XOR) wv = _mm512_xor_si512(wv, flip);  // masked-out bytes become −128, met by zero activations
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv[i], wv);
    }
  };
  int32_t offset = 0;
  for (; offset + kStepBytes <= bytes; offset += kStepBytes) step(offset, ~__mmask64{0});
  if (offset < bytes) step(offset, (__mmask64{1} << (bytes - offset)) - 1);
  store_tile<MR, NR>(acc, c, a.c_stride, a.accumulate);
}

// One MR × NR tile over k codes of packed 4-bit weights: 64 bytes = 128 codes per step.
template <int MR, int NR>
void tile_packed4(const DotBlockArgs& a, const uint8_t* x, const uint8_t* w, int32_t* c) {
  __m512i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  const int32_t bytes = (a.k + 1) / 2;
  const auto step = [&](int32_t offset, __mmask64 mask) {
    __m512i even[MR], odd[MR];
    for (int i = 0; i < MR; ++i) {
      const uint8_t* row = x + static_cast<size_t>(i) * a.x_stride + 2 * static_cast<size_t>(offset);
      even[i] = _mm512_loadu_si512(row);
      odd[i] = _mm512_loadu_si512(row + kStepBytes);
    }
    for (int j = 0; j < NR; ++j) {
      const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + static_cast<size_t>(j) * a.w_stride + offset);
      const __m512i lo = _mm512_and_si512(wv, low_nibble);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low_nibble);
      for (int i = 0; i < MR; ++i) {
        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], even[i], lo);
        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], odd[i], hi);
      }
    }
  };
  int32_t offset = 0;
  for (; offset + kStepBytes <= bytes; offset += kStepBytes) step(offset, ~__mmask64{0});
  if (offset < bytes) step(offset, (__mmask64{1} << (bytes - offset)) - 1);
  store_tile<MR, NR>(acc, c, a.c_stride, a.accumulate);
}

using TileFunction = void (*)(const DotBlockArgs&, const uint8_t*, const uint8_t*, int32_t*);
constexpr int kMaxRows = 4, kMaxCols = 4;

template <int MR, int NR>
TileFunction tile_for(WeightFormat format) {
  switch (format) {
    case WeightFormat::kBytes7: return tile_bytes<MR, NR, false>;
    case WeightFormat::kBytes8: return tile_bytes<MR, NR, true>;
    case WeightFormat::kPacked4: return tile_packed4<MR, NR>;
  }
  return nullptr;
}

template <int MR>
TileFunction tile_for_cols(int cols, WeightFormat format) {
  switch (cols) {
    case 1: return tile_for<MR, 1>(format);
    case 2: return tile_for<MR, 2>(format);
    case 3: return tile_for<MR, 3>(format);
    default: return tile_for<MR, 4>(format);
  }
}

TileFunction tile_function(int rows, int cols, WeightFormat format) {
  switch (rows) {
    case 1: return tile_for_cols<1>(cols, format);
    case 2: return tile_for_cols<2>(cols, format);
    case 3: return tile_for_cols<3>(cols, format);
    default: return tile_for_cols<4>(cols, format);
  }
}

void dot_block(const DotBlockArgs& a) {
  const bool packed = a.format == WeightFormat::kPacked4;
  for (int32_t j0 = 0; j0 < a.cols; j0 += kMaxCols) {
    const int32_t nr = a.cols - j0 < kMaxCols ? a.cols - j0 : kMaxCols;
    const uint8_t* w = a.w + static_cast<size_t>(j0) * a.w_stride;
    for (int32_t i0 = 0; i0 < a.rows; i0 += kMaxRows) {
      const int32_t mr = a.rows - i0 < kMaxRows ? a.rows - i0 : kMaxRows;
      const uint8_t* x = a.x + static_cast<size_t>(i0) * a.x_stride;
      int32_t* c = a.c + static_cast<size_t>(i0) * a.c_stride + j0;
      tile_function(mr, nr, a.format)(a, x, w, c);
    }
  }
  (void)packed;
}

}  // namespace

const DotIsa kDotAvx512Vnni{"avx512vnni", ActivationLayout{64, 128, true}, 128, dot_block};

}  // namespace illm::optimized
