// AVX2 per-group dot products (grouped_dot.h) on register tiles of up to 2 activation rows × 4 weight rows, one
// 32-byte half of the 64-byte weight step per ymm: 128-bit lane q of a half holds quad 2·half + q, hence one group.
// Per half and pair (t, j) the dot leaves 8 int32 lanes, lanes 4q..4q+3 summing to C_quad of quad q:
//   - packed 4-bit weights: vpmaddubsw with the activation codes as the unsigned operand and the nibbles (0..15,
//     positive as signed bytes) as the signed one: each pair <= 2·255·15 = 7650, the low- and high-nibble halves
//     added once in int16 (<= 15300) before vpmaddwd by 1 widens to int32: no saturation for any code width <= 8;
//   - byte weights (codes up to 255 against activations up to 255): a vpmaddubsw pair reaches 2·255·255, far past
//     int16 (and with the codes flipped to signed, 2·255·128 > 32767 still), so both operands are zero-extended to
//     int16 with vpunpck{l,h}bw (in 128-bit lanes: bytes 0..7 | 16..23 and 8..15 | 24..31) and multiplied by
//     vpmaddwd (pair sums <= 130050, exact in int32); the two products of a row stay in their quads' 128-bit lanes.
// AVX2 reads weight bytes unflipped: o = 0 (kDotAvx2.byte8_offset) for every format, so (z − o)·RS = z·RS, one
// vpmaddwd: z in [0, 255] and RS <= 32·255 fit int16, both high halves are 0, so the pair sum is the product.
// The 4 weight rows' vectors are reduced together to one vector of C_quad (lane q·4 + c: quad q, weight row c),
// corrected to D_quad and multiplied by μ of each lane's group into 64-bit accumulators: vpmuldq (signed 32×32→64)
// of the even and the odd lanes is exact since |D_quad| <= 32·255·255 < 2^31 and μ < 2^24; the 64-bit sums wrap
// to the exact P' (grouped_dot.h). Weight rows are not padded: a row whose byte count is an odd multiple of 16
// (packed G = 32 with an odd number of groups) ends in half a half, read with a 16-byte load; its second quad meets
// zero activations and zero terms. Compiled with -mavx2 only (no VNNI); called only when the CPU has AVX2.
#include <immintrin.h>

#include "kernels/optimized/avx2_inline.h"
#include "kernels/optimized/grouped_dot.h"

namespace illm::optimized {
namespace {

constexpr int32_t kHalfBytes = kGroupedQuadBytes * 2;  // weight bytes per ymm: 2 quads
constexpr int32_t kHalfLanes = 8;                      // quad_sums lanes per half (4 per quad)
constexpr int32_t kTileRows = 2, kTileCols = 4;

// What every tile of one call shares.
struct Shape {
  int32_t bytes;         // weight bytes per row (a multiple of 16)
  int32_t halves;        // 32-byte halves per row, the last one maybe 16 bytes
  int32_t full_halves;   // halves lying wholly inside the row
  int32_t group_shift;   // log2(quads per group): 0, 1, 2 or 3
};

using ColumnBlock = GroupedColumnBlock;
static_assert(kGroupedBlockRows == kTileCols);

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m256i load_low(const void* p) {  // 16 bytes, upper lane zero
  return _mm256_zextsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}

// Lane q·4 + (0, 1, 2, 3) = the sums of the four int32 lanes of 128-bit lane q of (a, b, c, d).
inline __m256i lane_sums4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

// One activation row's codes for one half: packed weights: the 32 even and 32 odd codes of the 64-code block (the
// avx2 ActivationLayout); byte weights: the 32 codes zero-extended to int16 in vpunpck order.
template <bool PACKED>
struct RowCodes {
  __m256i u, v;
};

template <bool PACKED>
inline RowCodes<PACKED> row_codes(const GroupedDotArgs& a, int32_t t, int32_t offset) {
  const uint8_t* x = a.x + static_cast<size_t>(t) * a.x_stride;
  if constexpr (PACKED) {
    return {load(x + 2 * static_cast<size_t>(offset)), load(x + 2 * static_cast<size_t>(offset) + kHalfBytes)};
  } else {
    const __m256i codes = load(x + offset), zero = _mm256_setzero_si256();
    return {_mm256_unpacklo_epi8(codes, zero), _mm256_unpackhi_epi8(codes, zero)};
  }
}

// The 8 int32 lanes of C of one (t, j) and one half (header comment: 128-bit lane q sums to C_quad of quad q).
template <bool PACKED>
inline __m256i dot(__m256i wu, __m256i wv, const RowCodes<PACKED>& x) {
  if constexpr (PACKED) {
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(x.u, wu), _mm256_maddubs_epi16(x.v, wv)),
                             _mm256_set1_epi16(1));
  } else {
    return _mm256_add_epi32(_mm256_madd_epi16(x.u, wu), _mm256_madd_epi16(x.v, wv));
  }
}

// out[c] = Σ over quads of the 64-bit lanes of weight row c − Γ_c·z1 (wrapping), for the block's stored rows.
// even: lanes (quad 0: rows 0, 2; quad 1: rows 0, 2); odd: the same of rows 1, 3.
inline void store_row(__m256i even, __m256i odd, const ColumnBlock& block, int32_t zero_point, int64_t* out) {
  const __m128i e2 = _mm_add_epi64(_mm256_castsi256_si128(even), _mm256_extracti128_si256(even, 1));  // rows 0, 2
  const __m128i o2 = _mm_add_epi64(_mm256_castsi256_si128(odd), _mm256_extracti128_si256(odd, 1));    // rows 1, 3
  alignas(16) uint64_t sums[kGroupedBlockRows];
  _mm_store_si128(reinterpret_cast<__m128i*>(sums), _mm_unpacklo_epi64(e2, o2));
  _mm_store_si128(reinterpret_cast<__m128i*>(sums + 2), _mm_unpackhi_epi64(e2, o2));
  grouped_store_row(sums, block, zero_point, out);
}

// Activation rows [i0, i0 + MR) against one block of 4 weight rows over the whole row.
template <int MR, bool PACKED>
void tile(const GroupedDotArgs& a, const Shape& shape, const ColumnBlock& block, int32_t i0) {
  static_assert(MR >= 1 && MR <= kTileRows);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i mantissa_mask = _mm256_set1_epi32(0x00FFFFFF);
  __m256i even0 = zero, odd0 = zero, even1 = zero, odd1 = zero;
  // Each half prefetches its bytes of the block after next (prefetches never fault past the weight's end): the 4
  // interleaved row streams of a block alone stream poorly from memory in decode.
  const size_t next_block = 2 * kTileCols * a.w_stride;
  for (int32_t half = 0; half < shape.halves; ++half) {
    const int32_t offset = half * kHalfBytes;
    const bool whole = half < shape.full_halves;
    const int32_t first_quad = 2 * half;
    // μ and z of every lane's (group, weight row): lanes 0..3 quad 2·half, 4..7 quad 2·half + 1.
    __m256i terms;
    if (shape.group_shift == 0) {  // one group per quad: the two quads' terms lie side by side
      const uint32_t* t = block.terms + static_cast<size_t>(first_quad) * kTileCols;
      terms = whole ? load(t) : load_low(t);  // a lone last quad: no terms past the block's
    } else {                                  // both quads in one group
      terms = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(
          block.terms + static_cast<size_t>(first_quad >> shape.group_shift) * kTileCols)));
    }
    const __m256i mu = _mm256_and_si256(terms, mantissa_mask);
    const __m256i mu_odd = _mm256_srli_epi64(mu, 32);
    const __m256i z = _mm256_srli_epi32(terms, 24);
    const RowCodes<PACKED> x0 = row_codes<PACKED>(a, i0, offset);
    const RowCodes<PACKED> x1 = MR > 1 ? row_codes<PACKED>(a, i0 + 1, offset) : x0;
    __m256i s00, s01, s02, s03, s10 = zero, s11 = zero, s12 = zero, s13 = zero;
    const auto column = [&](int c, __m256i& row0, __m256i& row1) {
      _mm_prefetch(reinterpret_cast<const char*>(block.w[c] + next_block + offset), _MM_HINT_T0);
      __m256i wu, wv;
      avx2::weight_operands<PACKED>(whole ? load(block.w[c] + offset) : load_low(block.w[c] + offset), wu, wv);
      row0 = dot<PACKED>(wu, wv, x0);
      if constexpr (MR > 1) row1 = dot<PACKED>(wu, wv, x1);
    };
    column(0, s00, s10);
    column(1, s01, s11);
    column(2, s02, s12);
    column(3, s03, s13);
    const auto accumulate = [&](int32_t t, __m256i c, __m256i& even, __m256i& odd) {
      const __m256i rs = load(a.quad_sums + static_cast<size_t>(t) * a.quad_sums_stride +
                              static_cast<size_t>(half) * kHalfLanes);
      const __m256i d = _mm256_sub_epi32(c, _mm256_madd_epi16(z, rs));
      even = _mm256_add_epi64(even, _mm256_mul_epi32(d, mu));
      odd = _mm256_add_epi64(odd, _mm256_mul_epi32(_mm256_srli_epi64(d, 32), mu_odd));
    };
    accumulate(i0, lane_sums4(s00, s01, s02, s03), even0, odd0);
    if constexpr (MR > 1) accumulate(i0 + 1, lane_sums4(s10, s11, s12, s13), even1, odd1);
  }
  store_row(even0, odd0, block, a.zero_points[i0], block.out + static_cast<size_t>(i0) * a.out_stride);
  if constexpr (MR > 1)
    store_row(even1, odd1, block, a.zero_points[i0 + 1], block.out + static_cast<size_t>(i0 + 1) * a.out_stride);
}

using TileFunction = void (*)(const GroupedDotArgs&, const Shape&, const ColumnBlock&, int32_t);

template <bool PACKED>
TileFunction tile_for_rows(int32_t rows) {
  return rows == 1 ? tile<1, PACKED> : tile<2, PACKED>;
}

void grouped_dot(const GroupedDotArgs& a) {
  const bool packed = a.format == WeightFormat::kPacked4;
  const int32_t quad_codes = packed ? 2 * kGroupedQuadBytes : kGroupedQuadBytes;
  Shape shape{};
  shape.bytes = packed ? a.k / 2 : a.k;
  shape.halves = (shape.bytes + kHalfBytes - 1) / kHalfBytes;
  shape.full_halves = shape.bytes / kHalfBytes;
  const int32_t quads_per_group = a.group / quad_codes;
  while ((2 << shape.group_shift) <= quads_per_group) ++shape.group_shift;
  for (int32_t j0 = 0; j0 < a.cols; j0 += kTileCols) {
    const ColumnBlock block = grouped_column_block(a, j0);
    for (int32_t i0 = 0; i0 < a.rows; i0 += kTileRows) {
      const int32_t mr = a.rows - i0 < kTileRows ? a.rows - i0 : kTileRows;
      (packed ? tile_for_rows<true>(mr) : tile_for_rows<false>(mr))(a, shape, block, i0);
    }
  }
}

}  // namespace

const GroupedDotIsa kGroupedDotAvx2{"avx2", grouped_dot};

}  // namespace illm::optimized
