// AVX2 dot blocks on register tiles of up to 2 activation rows × 4 weight rows, 32 weight bytes per step.
//
// Exactness (vpmaddubsw adds two u8·s8 products into a *saturating* int16):
//   - packed 4-bit weights: each pair is at most 2·255·15 = 7650, and the two nibble halves of a step are added
//     once in int16 (≤ 15300) before vpmaddwd widens to int32: no saturation for any activation width <= 8;
//   - byte weights with 2·(2^x_bits − 1)·(2^w_bits − 1) <= 32767 (e.g. 8-bit activations with weights of <= 6 bits,
//     7-bit with 7-bit): vpmaddubsw cannot saturate;
//   - every other case (8-bit weights, or 7-bit weights with 8-bit activations) widens both operands to int16 and
//     uses vpmaddwd (products < 2^16, pair sums < 2^17: exact in int32). No weight offset is needed (offset 0).
// The tail of a weight row is copied into a zero-padded 32-byte buffer: nothing past the row is read.
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

// Stores (or adds) the sums of `count` (1..4) accumulators at out[0..count).
inline void store4(int32_t* out, int count, bool accumulate, __m256i a, __m256i b, __m256i c, __m256i d) {
  alignas(16) int32_t sums[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(sums), reduce4(a, b, c, d));
  for (int q = 0; q < count; ++q) out[q] = accumulate ? out[q] + sums[q] : sums[q];
}

enum class Kernel { kMaddubs, kWiden, kPacked4 };

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Named accumulators c<i><j> (an array of vectors is kept in memory by the compiler), used under `if constexpr`.
#define ILLM_COL(j)                                                                                            \
  if constexpr (NR > j) {                                                                                      \
    const __m256i wv = load(wstep[j]);                                                                         \
    if constexpr (KIND == Kernel::kPacked4) {                                                                  \
      const __m256i lo = _mm256_and_si256(wv, low_nibble);                                                     \
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low_nibble);                               \
      c0##j = _mm256_add_epi32(c0##j, _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(e0, lo),          \
                                                                         _mm256_maddubs_epi16(o0, hi)), ones));  \
      if constexpr (MR > 1)                                                                                    \
        c1##j = _mm256_add_epi32(c1##j, _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(e1, lo),        \
                                                                           _mm256_maddubs_epi16(o1, hi)), ones)); \
    } else if constexpr (KIND == Kernel::kMaddubs) {                                                           \
      c0##j = _mm256_add_epi32(c0##j, _mm256_madd_epi16(_mm256_maddubs_epi16(e0, wv), ones));                  \
      if constexpr (MR > 1) c1##j = _mm256_add_epi32(c1##j, _mm256_madd_epi16(_mm256_maddubs_epi16(e1, wv), ones)); \
    } else {                                                                                                   \
      const __m256i w0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(wv));                                     \
      const __m256i w1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(wv, 1));                                \
      c0##j = _mm256_add_epi32(c0##j, _mm256_add_epi32(_mm256_madd_epi16(e0, w0), _mm256_madd_epi16(o0, w1)));  \
      if constexpr (MR > 1)                                                                                    \
        c1##j = _mm256_add_epi32(c1##j, _mm256_add_epi32(_mm256_madd_epi16(e1, w0), _mm256_madd_epi16(o1, w1))); \
    }                                                                                                          \
  }

// One MR × NR tile (MR <= 2, NR <= 4) over a.k codes. e/o: the two 32-byte halves of a packed 4-bit step, the
// activation bytes of a byte step (o unused), or the low and high 16 activations widened to int16.
template <int MR, int NR, Kernel KIND>
void tile(const DotBlockArgs& a, const uint8_t* x, const uint8_t* w, int32_t* c) {
  static_assert(MR >= 1 && MR <= 2 && NR >= 1 && NR <= 4);
  const __m256i zero = _mm256_setzero_si256();
  __m256i c00 = zero, c01 = zero, c02 = zero, c03 = zero, c10 = zero, c11 = zero, c12 = zero, c13 = zero;
  const __m256i ones = _mm256_set1_epi16(1), low_nibble = _mm256_set1_epi8(0x0F);
  const size_t xs = a.x_stride;
  const int32_t bytes = KIND == Kernel::kPacked4 ? (a.k + 1) / 2 : a.k;
  // Full steps read the weight rows in place; the tail step reads zero-padded copies of the rows' last bytes.
  const uint8_t* wrow[4] = {w, w + (NR > 1 ? a.w_stride : 0), w + (NR > 2 ? 2 * a.w_stride : 0),
                            w + (NR > 3 ? 3 * a.w_stride : 0)};
  alignas(32) uint8_t tail[4][kStepBytes];
  const int32_t full = bytes / kStepBytes * kStepBytes;
  for (int32_t offset = 0; offset < bytes; offset += kStepBytes) {
    // This step's weight bytes per row: in place, or (the last, partial step) the zero-padded copies. A pointer
    // outside its array may not even be formed, so no "tail - offset" base.
    const uint8_t* wstep[4];
    const bool partial = offset == full;
    for (int j = 0; j < NR; ++j) {
      if (partial) {
        for (int32_t q = 0; q < kStepBytes; ++q) tail[j][q] = offset + q < bytes ? wrow[j][offset + q] : 0;
        wstep[j] = tail[j];
      } else {
        wstep[j] = wrow[j] + offset;
      }
    }
    __m256i e0, o0 = zero, e1 = zero, o1 = zero;
    if constexpr (KIND == Kernel::kPacked4) {
      const uint8_t* xr = x + 2 * static_cast<size_t>(offset);
      e0 = load(xr);
      o0 = load(xr + kStepBytes);
      if constexpr (MR > 1) e1 = load(xr + xs), o1 = load(xr + xs + kStepBytes);
    } else if constexpr (KIND == Kernel::kMaddubs) {
      e0 = load(x + offset);
      if constexpr (MR > 1) e1 = load(x + xs + offset);
    } else {
      const __m256i b0 = load(x + offset);
      e0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b0));
      o0 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(b0, 1));
      if constexpr (MR > 1) {
        const __m256i b1 = load(x + xs + offset);
        e1 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b1));
        o1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(b1, 1));
      }
    }
    ILLM_COL(0) ILLM_COL(1) ILLM_COL(2) ILLM_COL(3)
  }
  store4(c, NR, a.accumulate, c00, c01, c02, c03);
  if constexpr (MR > 1) store4(c + a.c_stride, NR, a.accumulate, c10, c11, c12, c13);
}

#undef ILLM_COL

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
  // 16 ymm registers: 2 × 4 tiles for vpmaddubsw on bytes, 2 × 3 where each step needs more live vectors.
  const int32_t max_cols = kind == Kernel::kMaddubs ? 4 : 3;
  for (int32_t j0 = 0; j0 < a.cols; j0 += max_cols) {
    const int32_t nr = a.cols - j0 < max_cols ? a.cols - j0 : max_cols;
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
