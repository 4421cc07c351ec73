// AVX-512 VNNI per-group dot products (grouped_dot.h) on register tiles of up to 4 activation rows × 4 weight rows.
// Per 64-byte weight step and pair (t, j), vpdpbusd leaves 16 int32 lanes; the 4 lanes of each 128-bit lane q belong
// to quad q of the step (16 weight bytes; with the even/odd activation blocks of the packed 4-bit layout the low and
// high nibbles of those bytes meet codes of the same quad), hence to one group. The four weight rows' vectors are
// reduced together to one vector of C_quad (lane q·4 + c: quad q, weight row c), corrected to D_quad with the
// quad's activation sum, and multiplied by μ of each lane's group into 64-bit accumulators (vpmuldq of the even and
// the odd lanes). |D_quad| <= 32·255·255 < 2^31 and μ < 2^24: every product is exact; the 64-bit sums wrap to the
// exact P' (grouped_dot.h). The group of each lane comes from one masked load of the step's terms and a fixed
// permutation (G / quad = 1, 2, 4 or 8 quads per group, a step covers 4 quads). (z − o)·RS is one vpmaddwd: z − o in
// [−128, 255] and RS <= 32·255 fit int16, RS's high half is 0, so the pair sum is exactly the product.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni; called only when the CPU has them.

#include "kernels/optimized/avx512vnni_inline.h"
#include "kernels/optimized/grouped_dot.h"

namespace illm::optimized {
namespace {

constexpr int32_t kTileRows = 4, kTileCols = 4;

// What every tile of one call shares.
struct Shape {
  int32_t bytes;            // weight bytes per row
  int32_t steps;            // 64-byte steps per row
  int32_t quads_per_group;  // 1, 2, 4 or 8
  int32_t group_shift;      // log2(quads_per_group): no division in the step loop
  int32_t groups_per_step;  // 4 / quads_per_group, at least 1
  int32_t groups;
  __m512i lane_group;       // lane q·4 + c → index (q / quads_per_group)·4 + c into the step's loaded terms
};

using ColumnBlock = GroupedColumnBlock;
static_assert(kGroupedBlockRows == kTileCols);

// Accumulators of activation row i: even lanes (weight rows 0, 2) and odd lanes (1, 3) of every quad.
#define ILLM_ACC(i) __m512i even##i = zero, odd##i = zero;
#define ILLM_ROW(i)                                                                                                  \
  if constexpr (MR > i) {                                                                                            \
    const uint8_t* xr = a.x + static_cast<size_t>(i0 + i) * a.x_stride;                                              \
    __m512i s0 = zero, s1 = zero, s2 = zero, s3 = zero;                                                              \
    if constexpr (KIND == vnni::Kind::kPacked4) {                                                                    \
      const __m512i xe = _mm512_loadu_si512(xr + 2 * static_cast<size_t>(offset));                                   \
      const __m512i xo = _mm512_loadu_si512(xr + 2 * static_cast<size_t>(offset) + vnni::kStepBytes);                \
      s0 = vnni::dpbusd(vnni::dpbusd(s0, xe, lo0), xo, hi0);                                                         \
      s1 = vnni::dpbusd(vnni::dpbusd(s1, xe, lo1), xo, hi1);                                                         \
      s2 = vnni::dpbusd(vnni::dpbusd(s2, xe, lo2), xo, hi2);                                                         \
      s3 = vnni::dpbusd(vnni::dpbusd(s3, xe, lo3), xo, hi3);                                                         \
    } else {                                                                                                         \
      const __m512i xv = _mm512_loadu_si512(xr + offset);                                                            \
      s0 = vnni::dpbusd(s0, xv, lo0);                                                                                \
      s1 = vnni::dpbusd(s1, xv, lo1);                                                                                \
      s2 = vnni::dpbusd(s2, xv, lo2);                                                                                \
      s3 = vnni::dpbusd(s3, xv, lo3);                                                                                \
    }                                                                                                                \
    const __m512i rs = _mm512_loadu_si512(a.quad_sums + static_cast<size_t>(i0 + i) * a.quad_sums_stride +           \
                                          static_cast<size_t>(step) * 16);                                           \
    const __m512i d = _mm512_sub_epi32(vnni::lane_sums4(s0, s1, s2, s3), _mm512_madd_epi16(z_offset, rs));          \
    even##i = _mm512_add_epi64(even##i, _mm512_mul_epi32(d, mu));                                                    \
    odd##i = _mm512_add_epi64(odd##i, _mm512_mul_epi32(_mm512_srli_epi64(d, 32), mu_odd));                           \
  }
#define ILLM_STORE(i)                                                                                                \
  if constexpr (MR > i) store_row(even##i, odd##i, block, a.zero_points[i0 + i],                                     \
                            block.out + static_cast<size_t>(i0 + i) * a.out_stride);

// out[c] = Σ over quads of the 64-bit lanes of weight row c − Γ_c·z1 (wrapping), for the block's stored rows.
inline void store_row(__m512i even, __m512i odd, const ColumnBlock& block, int32_t zero_point, int64_t* out) {
  const __m256i e4 = _mm256_add_epi64(_mm512_castsi512_si256(even), _mm512_extracti64x4_epi64(even, 1));
  const __m256i o4 = _mm256_add_epi64(_mm512_castsi512_si256(odd), _mm512_extracti64x4_epi64(odd, 1));
  const __m128i e2 = _mm_add_epi64(_mm256_castsi256_si128(e4), _mm256_extracti128_si256(e4, 1));  // rows 0, 2
  const __m128i o2 = _mm_add_epi64(_mm256_castsi256_si128(o4), _mm256_extracti128_si256(o4, 1));  // rows 1, 3
  alignas(16) uint64_t sums[kGroupedBlockRows];
  _mm_store_si128(reinterpret_cast<__m128i*>(sums), _mm_unpacklo_epi64(e2, o2));
  _mm_store_si128(reinterpret_cast<__m128i*>(sums + 2), _mm_unpackhi_epi64(e2, o2));
  grouped_store_row(sums, block, zero_point, out);
}

// Activation rows [i0, i0 + MR) against one block of 4 weight rows over the whole row.
template <int MR, vnni::Kind KIND>
void tile(const GroupedDotArgs& a, const Shape& shape, const ColumnBlock& block, int32_t i0) {
  static_assert(MR >= 1 && MR <= kTileRows);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), low_nibble = _mm512_set1_epi8(0x0F);
  const __m512i mantissa_mask = _mm512_set1_epi32(0x00FFFFFF);
  const __m512i weight_offset = _mm512_set1_epi32(KIND == vnni::Kind::kBytesXor ? 128 : 0);
  ILLM_ACC(0) ILLM_ACC(1) ILLM_ACC(2) ILLM_ACC(3)
  // Each step prefetches its bytes of the next block's rows (prefetches never fault past the weight's end): the
  // 4 interleaved row streams of a block alone stream poorly from memory in decode.
  const size_t next_block = 2 * kTileCols * a.w_stride;
  const size_t next_terms = 2 * kTileCols * static_cast<size_t>(shape.groups);
  for (int32_t step = 0; step < shape.steps; ++step) {
    const int32_t offset = step * vnni::kStepBytes;
    const __mmask64 mask = vnni::step_mask(shape.bytes - offset);  // masked-out weight bytes meet zero activations
    // The weight rows' vectors (low and high nibbles for packed codes).
    __m512i lo0, lo1, lo2, lo3, hi0 = zero, hi1 = zero, hi2 = zero, hi3 = zero;
    const auto weights = [&](int c, __m512i& lo, __m512i& hi) {
      _mm_prefetch(reinterpret_cast<const char*>(block.w[c] + next_block + offset), _MM_HINT_T0);
      const __m512i wv = _mm512_maskz_loadu_epi8(mask, block.w[c] + offset);
      if constexpr (KIND == vnni::Kind::kPacked4) {
        lo = _mm512_and_si512(wv, low_nibble);
        hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low_nibble);
      } else {
        lo = KIND == vnni::Kind::kBytesXor ? _mm512_xor_si512(wv, flip) : wv;
        (void)hi;
      }
    };
    weights(0, lo0, hi0);
    weights(1, lo1, hi1);
    weights(2, lo2, hi2);
    weights(3, lo3, hi3);
    // μ and z − o of every lane's (group, weight row).
    const int32_t first_group = (step * kGroupedQuadsPerStep) >> shape.group_shift;
    const int32_t loaded = shape.groups - first_group < shape.groups_per_step ? shape.groups - first_group
                                                                              : shape.groups_per_step;
    const __mmask16 term_mask = static_cast<__mmask16>((1u << (4 * loaded)) - 1);
    _mm_prefetch(reinterpret_cast<const char*>(block.terms + next_terms + static_cast<size_t>(first_group) * 4),
                 _MM_HINT_T0);
    const __m512i terms = _mm512_permutexvar_epi32(
        shape.lane_group, _mm512_maskz_loadu_epi32(term_mask, block.terms + static_cast<size_t>(first_group) * 4));
    const __m512i mu = _mm512_and_si512(terms, mantissa_mask);
    const __m512i mu_odd = _mm512_srli_epi64(mu, 32);
    const __m512i z_offset = _mm512_sub_epi32(_mm512_srli_epi32(terms, 24), weight_offset);
    ILLM_ROW(0) ILLM_ROW(1) ILLM_ROW(2) ILLM_ROW(3)
  }
  ILLM_STORE(0) ILLM_STORE(1) ILLM_STORE(2) ILLM_STORE(3)
}

#undef ILLM_ACC
#undef ILLM_ROW
#undef ILLM_STORE

using TileFunction = void (*)(const GroupedDotArgs&, const Shape&, const ColumnBlock&, int32_t);

template <vnni::Kind KIND>
TileFunction tile_for_rows(int32_t rows) {
  switch (rows) {
    case 1: return tile<1, KIND>;
    case 2: return tile<2, KIND>;
    case 3: return tile<3, KIND>;
    default: return tile<4, KIND>;
  }
}

TileFunction tile_function(int32_t rows, vnni::Kind kind) {
  switch (kind) {
    case vnni::Kind::kBytes: return tile_for_rows<vnni::Kind::kBytes>(rows);
    case vnni::Kind::kBytesXor: return tile_for_rows<vnni::Kind::kBytesXor>(rows);
    case vnni::Kind::kPacked4: return tile_for_rows<vnni::Kind::kPacked4>(rows);
  }
  return nullptr;
}

void grouped_dot(const GroupedDotArgs& a) {
  const vnni::Kind kind = vnni::kind_of(a.format);
  const bool packed = kind == vnni::Kind::kPacked4;
  const int32_t quad_codes = packed ? 2 * kGroupedQuadBytes : kGroupedQuadBytes;
  Shape shape;
  shape.bytes = packed ? a.k / 2 : a.k;
  shape.steps = (shape.bytes + vnni::kStepBytes - 1) / vnni::kStepBytes;
  shape.quads_per_group = a.group / quad_codes;
  shape.group_shift = 0;
  while ((2 << shape.group_shift) <= shape.quads_per_group) ++shape.group_shift;
  shape.groups_per_step = shape.quads_per_group >= kGroupedQuadsPerStep ? 1 : kGroupedQuadsPerStep / shape.quads_per_group;
  shape.groups = a.k / a.group;
  alignas(64) int32_t lane_group[16];
  for (int32_t lane = 0; lane < 16; ++lane) lane_group[lane] = lane / 4 / shape.quads_per_group * 4 + lane % 4;
  shape.lane_group = _mm512_load_si512(lane_group);
  for (int32_t j0 = 0; j0 < a.cols; j0 += kTileCols) {
    const ColumnBlock block = grouped_column_block(a, j0);
    for (int32_t i0 = 0; i0 < a.rows; i0 += kTileRows) {
      const int32_t mr = a.rows - i0 < kTileRows ? a.rows - i0 : kTileRows;
      tile_function(mr, kind)(a, shape, block, i0);
    }
  }
}

}  // namespace

const GroupedDotIsa kGroupedDotAvx512Vnni{"avx512vnni", grouped_dot};

}  // namespace illm::optimized
