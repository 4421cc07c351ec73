// AVX-512 VNNI dot blocks: vpdpbusd (unsigned activation bytes × signed weight bytes, four products summed into each
// int32 lane, no saturation) on register tiles of up to 4 activation rows × 4 weight rows (1 × 8 for a single row,
// the decode GEMV), 64 weight bytes per step.
// Weights are read in their storage layout: bytes of codes <= 127 directly, 8-bit codes flipped to code − 128 by
// one xor (the caller adds 128·Σx back), packed 4-bit codes split into low and high nibbles by a mask and a shift
// (the activations of each 128-code block are stored even codes first, then odd codes, so both halves line up).
// The row tail is read with a byte-masked load: nothing past a weight row's last byte is read.
// The accumulators are named variables (an array of vectors is kept in memory by the compiler), declared for the
// largest tile and used under `if constexpr`.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni; called only when the CPU has them.

#include "kernels/optimized/avx512vnni_inline.h"

namespace illm::optimized {
namespace {

using vnni::dpbusd;
using vnni::Kind;
using vnni::kStepBytes;
using vnni::step_mask;

// (Σ lanes of a, Σ b, Σ c, Σ d).
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i abcd = vnni::lane_sums4(a, b, c, d);
  const __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}

// Stores (or adds) the sums of `count` (1..4) accumulators at out[0..count).
inline void store4(int32_t* out, int count, bool accumulate, __m512i a, __m512i b, __m512i c, __m512i d) {
  const __mmask8 lanes = static_cast<__mmask8>((1u << count) - 1);
  const __m128i previous = accumulate ? _mm_maskz_loadu_epi32(lanes, out) : _mm_setzero_si128();
  _mm_mask_storeu_epi32(out, lanes, _mm_add_epi32(previous, reduce4(a, b, c, d)));
}

// Accumulator c<i><j>: activation row i (< 4), weight row j (< 8).
#define ILLM_ACC_ROW(i) \
  __m512i c##i##0 = zero, c##i##1 = zero, c##i##2 = zero, c##i##3 = zero, c##i##4 = zero, c##i##5 = zero, \
          c##i##6 = zero, c##i##7 = zero;
// One weight vector of weight row j (byte weights): meets every activation row.
#define ILLM_BYTES_COL(j)                                                                        \
  if constexpr (NR > j) {                                                                        \
    __m512i wv = _mm512_maskz_loadu_epi8(mask, w + (j) * a.w_stride + offset);                   \
    if constexpr (KIND == Kind::kBytesXor) wv = _mm512_xor_si512(wv, flip);                      \
    c0##j = dpbusd(c0##j, x0, wv);                                                  \
    if constexpr (MR > 1) c1##j = dpbusd(c1##j, x1, wv);                            \
    if constexpr (MR > 2) c2##j = dpbusd(c2##j, x2, wv);                            \
    if constexpr (MR > 3) c3##j = dpbusd(c3##j, x3, wv);                            \
  }
// One weight vector of packed 4-bit weight row j: 128 codes, low nibbles meet the even activations.
#define ILLM_PACKED4_COL(j)                                                                      \
  if constexpr (NR > j) {                                                                        \
    const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + (j) * a.w_stride + offset);             \
    const __m512i lo = _mm512_and_si512(wv, low_nibble);                                         \
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low_nibble);                   \
    c0##j = dpbusd(dpbusd(c0##j, e0, lo), o0, hi);                     \
    if constexpr (MR > 1) c1##j = dpbusd(dpbusd(c1##j, e1, lo), o1, hi); \
    if constexpr (MR > 2) c2##j = dpbusd(dpbusd(c2##j, e2, lo), o2, hi); \
    if constexpr (MR > 3) c3##j = dpbusd(dpbusd(c3##j, e3, lo), o3, hi); \
  }
#define ILLM_STORE_ROW(i)                                                                                \
  if constexpr (MR > i) {                                                                                \
    int32_t* out = c + (i) * a.c_stride;                                                                 \
    store4(out, NR < 4 ? NR : 4, a.accumulate, c##i##0, c##i##1, c##i##2, c##i##3);                      \
    if constexpr (NR > 4) store4(out + 4, NR - 4, a.accumulate, c##i##4, c##i##5, c##i##6, c##i##7);     \
  }

// One MR × NR tile (MR <= 4, NR <= 8, MR·NR <= 16) over a.k codes.
template <int MR, int NR, Kind KIND>
void tile(const DotBlockArgs& a, const uint8_t* x, const uint8_t* w, int32_t* c) {
  static_assert(MR >= 1 && MR <= 4 && NR >= 1 && NR <= 8 && MR * NR <= 16);
  const __m512i zero = _mm512_setzero_si512();
  ILLM_ACC_ROW(0) ILLM_ACC_ROW(1) ILLM_ACC_ROW(2) ILLM_ACC_ROW(3)
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), low_nibble = _mm512_set1_epi8(0x0F);
  const size_t xs = a.x_stride;
  const int32_t bytes = KIND == Kind::kPacked4 ? (a.k + 1) / 2 : a.k;
  for (int32_t offset = 0; offset < bytes; offset += kStepBytes) {
    const __mmask64 mask = step_mask(bytes - offset);  // masked-out weight bytes meet zero activations
    if constexpr (KIND == Kind::kPacked4) {
      const uint8_t* xr = x + 2 * static_cast<size_t>(offset);
      const __m512i e0 = _mm512_loadu_si512(xr), o0 = _mm512_loadu_si512(xr + kStepBytes);
      const __m512i e1 = MR > 1 ? _mm512_loadu_si512(xr + xs) : zero;
      const __m512i o1 = MR > 1 ? _mm512_loadu_si512(xr + xs + kStepBytes) : zero;
      const __m512i e2 = MR > 2 ? _mm512_loadu_si512(xr + 2 * xs) : zero;
      const __m512i o2 = MR > 2 ? _mm512_loadu_si512(xr + 2 * xs + kStepBytes) : zero;
      const __m512i e3 = MR > 3 ? _mm512_loadu_si512(xr + 3 * xs) : zero;
      const __m512i o3 = MR > 3 ? _mm512_loadu_si512(xr + 3 * xs + kStepBytes) : zero;
      ILLM_PACKED4_COL(0) ILLM_PACKED4_COL(1) ILLM_PACKED4_COL(2) ILLM_PACKED4_COL(3)
      ILLM_PACKED4_COL(4) ILLM_PACKED4_COL(5) ILLM_PACKED4_COL(6) ILLM_PACKED4_COL(7)
    } else {
      const uint8_t* xr = x + offset;
      const __m512i x0 = _mm512_loadu_si512(xr);
      const __m512i x1 = MR > 1 ? _mm512_loadu_si512(xr + xs) : zero;
      const __m512i x2 = MR > 2 ? _mm512_loadu_si512(xr + 2 * xs) : zero;
      const __m512i x3 = MR > 3 ? _mm512_loadu_si512(xr + 3 * xs) : zero;
      ILLM_BYTES_COL(0) ILLM_BYTES_COL(1) ILLM_BYTES_COL(2) ILLM_BYTES_COL(3)
      ILLM_BYTES_COL(4) ILLM_BYTES_COL(5) ILLM_BYTES_COL(6) ILLM_BYTES_COL(7)
    }
  }
  ILLM_STORE_ROW(0) ILLM_STORE_ROW(1) ILLM_STORE_ROW(2) ILLM_STORE_ROW(3)
}

#undef ILLM_ACC_ROW
#undef ILLM_BYTES_COL
#undef ILLM_PACKED4_COL
#undef ILLM_STORE_ROW

// One activation row (decode): the weight rows one after another, so the matrix is read as one sequential stream
// (the prefetcher's best case; tiles of 8 interleaved rows stream short rows poorly). Four accumulators per row
// (two steps × even/odd halves) keep four independent vpdpbusd chains in flight.
template <Kind KIND>
void gemv_rows(const DotBlockArgs& a) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), low_nibble = _mm512_set1_epi8(0x0F);
  const int32_t bytes = KIND == Kind::kPacked4 ? (a.k + 1) / 2 : a.k;
  const int32_t x_step = KIND == Kind::kPacked4 ? 2 * kStepBytes : kStepBytes;  // activation bytes per weight step
  for (int32_t j = 0; j < a.cols; ++j) {
    const uint8_t* w = a.w + static_cast<size_t>(j) * a.w_stride;
    __m512i s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    const auto step = [&](int32_t offset, __m512i& u, __m512i& v) {
      const __mmask64 mask = step_mask(bytes - offset);
      const uint8_t* xr = a.x + static_cast<size_t>(offset / kStepBytes) * x_step;
      const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + offset);
      if constexpr (KIND == Kind::kPacked4) {
        u = dpbusd(u, _mm512_loadu_si512(xr), _mm512_and_si512(wv, low_nibble));
        v = dpbusd(v, _mm512_loadu_si512(xr + kStepBytes), _mm512_and_si512(_mm512_srli_epi16(wv, 4), low_nibble));
      } else {
        u = dpbusd(u, _mm512_loadu_si512(xr), KIND == Kind::kBytesXor ? _mm512_xor_si512(wv, flip) : wv);
      }
    };
    int32_t offset = 0;
    for (; offset + 2 * kStepBytes <= bytes; offset += 2 * kStepBytes) {
      step(offset, s0, s1);
      step(offset + kStepBytes, s2, s3);
    }
    for (; offset < bytes; offset += kStepBytes) step(offset, s0, s1);
    const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
    store4(a.c + j, 1, a.accumulate, sum, zero, zero, zero);
  }
}

using TileFunction = void (*)(const DotBlockArgs&, const uint8_t*, const uint8_t*, int32_t*);

template <int MR, int NR>
TileFunction tile_for(Kind kind) {
  switch (kind) {
    case Kind::kBytes: return tile<MR, NR, Kind::kBytes>;
    case Kind::kBytesXor: return tile<MR, NR, Kind::kBytesXor>;
    case Kind::kPacked4: return tile<MR, NR, Kind::kPacked4>;
  }
  return nullptr;
}

template <int MR, int MAX_NR>
TileFunction tile_for_cols(int cols, Kind kind) {
  if constexpr (MAX_NR > 4) {
    switch (cols) {
      case 5: return tile_for<MR, 5>(kind);
      case 6: return tile_for<MR, 6>(kind);
      case 7: return tile_for<MR, 7>(kind);
      case 8: return tile_for<MR, 8>(kind);
      default: break;
    }
  }
  switch (cols) {
    case 1: return tile_for<MR, 1>(kind);
    case 2: return tile_for<MR, 2>(kind);
    case 3: return tile_for<MR, 3>(kind);
    default: return tile_for<MR, 4>(kind);
  }
}

TileFunction tile_function(int rows, int cols, Kind kind) {
  switch (rows) {
    case 1: return tile_for_cols<1, 8>(cols, kind);
    case 2: return tile_for_cols<2, 4>(cols, kind);
    case 3: return tile_for_cols<3, 4>(cols, kind);
    default: return tile_for_cols<4, 4>(cols, kind);
  }
}

void dot_block(const DotBlockArgs& a) {
  const Kind kind = vnni::kind_of(a.format);
  if (a.rows == 1) {
    switch (kind) {
      case Kind::kBytes: return gemv_rows<Kind::kBytes>(a);
      case Kind::kBytesXor: return gemv_rows<Kind::kBytesXor>(a);
      case Kind::kPacked4: return gemv_rows<Kind::kPacked4>(a);
    }
  }
  constexpr int kMaxRows = 4;
  const int max_cols = a.rows == 1 ? 8 : 4;  // one row (decode): more weight rows in flight per tile
  for (int32_t j0 = 0; j0 < a.cols; j0 += max_cols) {
    const int32_t nr = a.cols - j0 < max_cols ? a.cols - j0 : max_cols;
    const uint8_t* w = a.w + static_cast<size_t>(j0) * a.w_stride;
    for (int32_t i0 = 0; i0 < a.rows; i0 += kMaxRows) {
      const int32_t mr = a.rows - i0 < kMaxRows ? a.rows - i0 : kMaxRows;
      tile_function(mr, nr, kind)(a, a.x + static_cast<size_t>(i0) * a.x_stride, w,
                                  a.c + static_cast<size_t>(i0) * a.c_stride + j0);
    }
  }
}

}  // namespace

const DotIsa kDotAvx512Vnni{"avx512vnni", ActivationLayout{64, 128, true}, 128, dot_block};

}  // namespace illm::optimized
