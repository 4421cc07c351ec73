// AVX2 dot blocks on register tiles of up to 2 activation rows × 4 weight rows, 32 weight bytes per step.
//
// Exactness (vpmaddubsw adds two u8·s8 products into a *saturating* int16):
//   - packed 4-bit weights: each pair is at most 2·255·15 = 7650, and the two nibble halves of a step are added
//     once in int16 (≤ 15300) before vpmaddwd widens to int32: no saturation for any activation width <= 8;
//   - byte weights with 2·(2^x_bits − 1)·(2^w_bits − 1) <= 32767 (e.g. 8-bit activations with weights of <= 6 bits,
//     7-bit with 7-bit): vpmaddubsw cannot saturate;
//   - every other case (8-bit weights, or 7-bit weights with 8-bit activations) widens both operands to int16 and
//     uses vpmaddwd (products < 2^16, pair sums < 2^17: exact in int32). No weight offset is needed (offset 0).
// The row tail of a weight row is copied into a zeroed 32-byte buffer: nothing past the row is read.
// Compiled with -mavx2; called only when the CPU has AVX2.
#include <immintrin.h>

#include "kernels/optimized/dot_block.h"

namespace illm::optimized {
namespace {

constexpr int kStepBytes = 32;
constexpr int32_t kInt16Max = 32767;

// (Σ lanes of a, Σ b, Σ c, Σ d).
inline __m128i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

template <int MR, int NR>
inline void store_tile(__m256i (&acc)[MR][NR], int32_t* c, size_t c_stride, bool accumulate) {
  const __m256i zero = _mm256_setzero_si256();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; j += 4) {
      const int count = NR - j < 4 ? NR - j : 4;
      alignas(16) int32_t sums[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(sums),
                      reduce4(acc[i][j], count > 1 ? acc[i][j + 1] : zero, count > 2 ? acc[i][j + 2] : zero,
                              count > 3 ? acc[i][j + 3] : zero));
      int32_t* out = c + static_cast<size_t>(i) * c_stride + j;
      for (int q = 0; q < count; ++q) out[q] = accumulate ? out[q] + sums[q] : sums[q];
    }
}

// 32 bytes of a weight row at `offset`, or its last `bytes − offset` (< 32) bytes followed by zeros.
inline __m256i load_weights(const uint8_t* row, int32_t offset, int32_t bytes) {
  if (offset + kStepBytes <= bytes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + offset));
  alignas(32) uint8_t tail[kStepBytes] = {};
  for (int32_t b = offset; b < bytes; ++b) tail[b - offset] = row[b];
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tail));
}

enum class Kernel { kMaddubs, kWiden, kPacked4 };

template <int MR, int NR, Kernel KIND>
void tile(const DotBlockArgs& a, const uint8_t* x, const uint8_t* w, int32_t* c) {
  __m256i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low_nibble = _mm256_set1_epi8(0x0F);
  const int32_t bytes = KIND == Kernel::kPacked4 ? (a.k + 1) / 2 : a.k;
  for (int32_t offset = 0; offset < bytes; offset += kStepBytes) {
    if constexpr (KIND == Kernel::kPacked4) {
      __m256i even[MR], odd[MR];
      for (int i = 0; i < MR; ++i) {
        const uint8_t* row = x + static_cast<size_t>(i) * a.x_stride + 2 * static_cast<size_t>(offset);
        even[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        odd[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + kStepBytes));
      }
      for (int j = 0; j < NR; ++j) {
        const __m256i wv = load_weights(w + static_cast<size_t>(j) * a.w_stride, offset, bytes);
        const __m256i lo = _mm256_and_si256(wv, low_nibble);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low_nibble);
        for (int i = 0; i < MR; ++i) {
          const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(even[i], lo), _mm256_maddubs_epi16(odd[i], hi));
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
        }
      }
    } else if constexpr (KIND == Kernel::kMaddubs) {
      __m256i xv[MR];
      for (int i = 0; i < MR; ++i)
        xv[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + static_cast<size_t>(i) * a.x_stride + offset));
      for (int j = 0; j < NR; ++j) {
        const __m256i wv = load_weights(w + static_cast<size_t>(j) * a.w_stride, offset, bytes);
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(xv[i], wv), ones));
      }
    } else {
      __m256i xv[MR][2];
      for (int i = 0; i < MR; ++i) {
        const __m256i bytes_x =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + static_cast<size_t>(i) * a.x_stride + offset));
        xv[i][0] = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(bytes_x));
        xv[i][1] = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(bytes_x, 1));
      }
      for (int j = 0; j < NR; ++j) {
        const __m256i wv = load_weights(w + static_cast<size_t>(j) * a.w_stride, offset, bytes);
        const __m256i w0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(wv));
        const __m256i w1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(wv, 1));
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_add_epi32(_mm256_madd_epi16(xv[i][0], w0),
                                                                   _mm256_madd_epi16(xv[i][1], w1)));
      }
    }
  }
  store_tile<MR, NR>(acc, c, a.c_stride, a.accumulate);
}

using TileFunction = void (*)(const DotBlockArgs&, const uint8_t*, const uint8_t*, int32_t*);
constexpr int kMaxRows = 2, kMaxCols = 4;

template <int MR, int NR>
TileFunction tile_for(Kernel kind) {
  switch (kind) {
    case Kernel::kMaddubs: return tile<MR, NR, Kernel::kMaddubs>;
    case Kernel::kWiden: return tile<MR, NR, Kernel::kWiden>;
    case Kernel::kPacked4: return tile<MR, NR, Kernel::kPacked4>;
  }
  return nullptr;
}

template <int MR>
TileFunction tile_for_cols(int cols, Kernel kind) {
  switch (cols) {
    case 1: return tile_for<MR, 1>(kind);
    case 2: return tile_for<MR, 2>(kind);
    case 3: return tile_for<MR, 3>(kind);
    default: return tile_for<MR, 4>(kind);
  }
}

// The proof of the header comment, as a decision.
Kernel kernel_for(const DotBlockArgs& a) {
  if (a.format == WeightFormat::kPacked4) return Kernel::kPacked4;
  const int64_t max_x = (int64_t{1} << a.x_bits) - 1, max_w = (int64_t{1} << a.w_bits) - 1;
  const bool signed_bytes = a.format == WeightFormat::kBytes7;  // codes <= 127 read as signed bytes unchanged
  return signed_bytes && 2 * max_x * max_w <= kInt16Max ? Kernel::kMaddubs : Kernel::kWiden;
}

void dot_block(const DotBlockArgs& a) {
  const Kernel kind = kernel_for(a);
  for (int32_t j0 = 0; j0 < a.cols; j0 += kMaxCols) {
    const int32_t nr = a.cols - j0 < kMaxCols ? a.cols - j0 : kMaxCols;
    const uint8_t* w = a.w + static_cast<size_t>(j0) * a.w_stride;
    for (int32_t i0 = 0; i0 < a.rows; i0 += kMaxRows) {
      const int32_t mr = a.rows - i0 < kMaxRows ? a.rows - i0 : kMaxRows;
      const TileFunction f = mr == 1 ? tile_for_cols<1>(nr, kind) : tile_for_cols<2>(nr, kind);
      f(a, a.x + static_cast<size_t>(i0) * a.x_stride, w, a.c + static_cast<size_t>(i0) * a.c_stride + j0);
    }
  }
}

}  // namespace

const DotIsa kDotAvx2{"avx2", ActivationLayout{32, 64, true}, 0, dot_block};

}  // namespace illm::optimized
