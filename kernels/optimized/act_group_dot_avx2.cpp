// AVX2 one-pass DI-MatMul of per-group activations (act_group_dot.h) on register tiles of up to 2 activation rows ×
// 4 weight rows, one 32-byte half of the 64-byte weight step per ymm. Per half and pair (t, j) the dot leaves 8
// int32 lanes of C', lane i over weight bytes 4i..4i+3 of the half (λ lane 8·half + i of the driver's layout):
//   - packed 4-bit weights: vpmaddubsw of the low nibbles against the even codes plus the high nibbles against the
//     odd codes (each product pair <= 2·15·128 = 3840, their int16 sum <= 7680: no saturation), then vpmaddwd by 1;
//   - byte weights (up to 255): vpmaddubsw could saturate (2·255·128 > 32767), so the codes are widened to int16
//     (weights zero-, centred activations sign-extended, unpacked in 128-bit lanes) and multiplied by vpmaddwd
//     (pair sums <= 65280, exact in int32); vphaddd of the two unpacked halves restores the natural lane order.
//     Widening, not the old kernel: A = 8 byte weights (W8A4-style recipes) also need the one pass.
// |C'| <= 4·255·128 per lane and λ < 2^31: vpmuldq of the even and odd lanes by their λ is exact, and the 64-bit
// lanes sum λ·C' wrapping (exact at the end: the true T fits int64). Byte lanes are always paired (A a multiple of
// 8 = two lanes of 4 codes), packed ones when A is a multiple of 16: one vpmuldq of the pair's int32 sum.
// A per-row weight sums the lanes over the whole row; T − z2·D, rshr and μ are scalar per (t, j). A per-group
// weight (G ∈ {32, 64, 128}) ends after 1, 2 or 4 halves (two groups per half for packed G = 32): the 4 columns'
// sums of one row are transposed into one vector and T − z2·D, rshr and μ run there, 64-bit products from vpmuludq
// halves and the arithmetic shift emulated with logical shifts and the sign (AVX2 has neither vpmullq nor vpsraq).
// Weight rows are not padded: the last, partial half reads a zero-padded copy. Compiled with -mavx2 only (no VNNI);
// called only when the CPU has AVX2.
#include <immintrin.h>

#include "kernels/optimized/avx2_inline.h"
#include "kernels/optimized/act_group_dot.h"

namespace illm::optimized {
namespace {

constexpr int32_t kHalfBytes = kActGroupStepBytes / 2;  // weight bytes per ymm
constexpr int32_t kHalfLanes = kActGroupLanes / 2;      // λ lanes per half
constexpr int32_t kQuadBytes = kActGroupStepBytes / kActGroupQuads;
constexpr int kTileRows = 2, kTileCols = 4;

// How the weight groups meet the halves.
enum class Weights {
  kPerRow,      // one group: the whole row
  kGroups,      // a group ends every halves_per_group halves
  kHalfGroups,  // two groups per half (packed G = 32): lanes 0..3 and 4..7
};

// What every tile of one call shares.
struct Shape {
  int32_t bytes;             // weight bytes per row
  int32_t halves;            // 32-byte halves per row, the last one maybe partial
  int32_t full_halves;       // halves lying wholly inside the row
  int32_t groups;            // weight groups per row (per-group weights)
  int32_t group_bytes;       // weight bytes per group
  int32_t halves_per_group;  // kGroups: 1, 2 or 4
  int32_t mantissa_bits;
};

using ColumnBlock = ActGroupColumnBlock;
static_assert(kActGroupBlockRows == kTileCols);

// One activation row's operands for one half: the codes the weights meet (packed: even and odd codes as signed
// bytes; byte weights: the codes sign-extended to int16 in vpunpck order) and the lanes' λ.
struct RowInputs {
  __m256i u, v, lambda, lambda_odd;
};

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

template <bool PACKED, bool PAIRS>
inline RowInputs row_inputs(const ActGroupDotArgs& a, int32_t t, int32_t half) {
  RowInputs in{};
  const int8_t* x = a.x + static_cast<size_t>(t) * a.x_stride;
  if constexpr (PACKED) {
    // A step holds 64 even codes then 64 odd ones; half h reads codes 32h.. of each.
    const int8_t* even = x + static_cast<size_t>(half / 2) * 2 * kActGroupStepBytes + (half % 2) * kHalfBytes;
    in.u = load(even);
    in.v = load(even + kActGroupStepBytes);
  } else {
    const __m256i codes = load(x + static_cast<size_t>(half) * kHalfBytes);
    in.u = _mm256_srai_epi16(_mm256_unpacklo_epi8(codes, codes), 8);
    in.v = _mm256_srai_epi16(_mm256_unpackhi_epi8(codes, codes), 8);
  }
  in.lambda = load(a.lambdas + static_cast<size_t>(t) * a.lambdas_stride + static_cast<size_t>(half) * kHalfLanes);
  if constexpr (!PAIRS) in.lambda_odd = _mm256_srli_epi64(in.lambda, 32);
  return in;
}

// The 64-bit lanes of Σ λ·C' of one (t, j) and one half (header comment).
template <bool PACKED, bool PAIRS>
inline __m256i weighted_dot(__m256i wu, __m256i wv, const RowInputs& in) {
  __m256i c;
  if constexpr (PACKED) {
    c = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(wu, in.u), _mm256_maddubs_epi16(wv, in.v)),
                          _mm256_set1_epi16(1));
  } else {
    c = _mm256_hadd_epi32(_mm256_madd_epi16(wu, in.u), _mm256_madd_epi16(wv, in.v));
  }
  if constexpr (PAIRS) return _mm256_mul_epi32(_mm256_add_epi32(c, _mm256_srli_epi64(c, 32)), in.lambda);
  return _mm256_add_epi64(_mm256_mul_epi32(c, in.lambda), _mm256_mul_epi32(_mm256_srli_epi64(c, 32), in.lambda_odd));
}

// Lanes (Σ of 64-bit lanes 0, 1 of a0, of a1, of a2, of a3) in `low` and the same of lanes 2, 3 in `high`.
inline void column_sums(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i& low, __m256i& high) {
  const __m256i s01 = _mm256_add_epi64(_mm256_unpacklo_epi64(a0, a1), _mm256_unpackhi_epi64(a0, a1));
  const __m256i s23 = _mm256_add_epi64(_mm256_unpacklo_epi64(a2, a3), _mm256_unpackhi_epi64(a2, a3));
  low = _mm256_permute2x128_si256(s01, s23, 0x20);
  high = _mm256_permute2x128_si256(s01, s23, 0x31);
}

// rshr(a, s) for 1 <= s < 64 without the bias overflowing: ⌊a / 2^s⌋ plus bit s − 1 of a; AVX2's arithmetic shift
// is the logical one with the sign filled into the top s bits.
struct Rounding {
  __m128i shift, shift_minus_1;
  __m256i sign_fill, one;
};

inline __m256i round_shift(__m256i a, const Rounding& r) {
  const __m256i negative = _mm256_cmpgt_epi64(_mm256_setzero_si256(), a);
  const __m256i floor = _mm256_or_si256(_mm256_srl_epi64(a, r.shift), _mm256_and_si256(negative, r.sign_fill));
  return _mm256_add_epi64(floor, _mm256_and_si256(_mm256_srl_epi64(a, r.shift_minus_1), r.one));
}

// a·b mod 2^64 for unsigned b < 2^32 in the low half of each lane: vpmuludq of a's low and high halves.
inline __m256i multiply_low(__m256i a, __m256i b) {
  const __m256i high = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(high, 32));
}

// rshr(T − z2·D, b_m)·μ of the 4 columns (lane c) for weight group g of the block; D broadcast.
inline __m256i group_term(__m256i t, int64_t d, const ColumnBlock& block, int32_t g, const Rounding& r) {
  const __m256i terms =
      _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block.terms + static_cast<size_t>(g) * 4)));
  const __m256i mu = _mm256_and_si256(terms, _mm256_set1_epi64x(0x00FFFFFF));
  const __m256i z = _mm256_srli_epi64(terms, 24);
  const __m256i centred = _mm256_sub_epi64(t, multiply_low(_mm256_set1_epi64x(d), z));
  return multiply_low(round_shift(centred, r), mu);
}

// The row sums of each column, then the baseline epilogue.
inline void store_per_row(__m256i a0, __m256i a1, __m256i a2, __m256i a3, const ColumnBlock& block,
                          const ActGroupDotArgs& a, int32_t t) {
  __m256i low, high;
  column_sums(a0, a1, a2, a3, low, high);
  alignas(32) int64_t sums[kTileCols];
  _mm256_store_si256(reinterpret_cast<__m256i*>(sums), _mm256_add_epi64(low, high));
  act_group_store_per_row(sums, block, a, t);
}

inline void store_lanes(__m256i v, const ColumnBlock& block, int64_t* out) {
  alignas(32) int64_t lanes[kTileCols];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  for (int32_t c = 0; c < block.cols; ++c) out[c] = lanes[c];
}

// Rows i0, i0 + 1 (MR of them) against the block's 4 weight rows over the whole K.
template <int MR, bool PACKED, bool PAIRS, Weights WEIGHTS>
void tile(const ActGroupDotArgs& a, const Shape& shape, const ColumnBlock& block, int32_t i0) {
  static_assert(MR >= 1 && MR <= kTileRows);
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc00 = zero, acc01 = zero, acc02 = zero, acc03 = zero, acc10 = zero, acc11 = zero, acc12 = zero,
          acc13 = zero;
  __m256i out0 = zero, out1 = zero;  // per-group weights: lane c = Σ_h of the row's rshr(…)·μ
  Rounding rounding{};
  if constexpr (WEIGHTS != Weights::kPerRow) {
    rounding.shift = _mm_cvtsi32_si128(shape.mantissa_bits);
    rounding.shift_minus_1 = _mm_cvtsi32_si128(shape.mantissa_bits - 1);
    rounding.sign_fill = _mm256_sll_epi64(_mm256_set1_epi64x(-1), _mm_cvtsi32_si128(64 - shape.mantissa_bits));
    rounding.one = _mm256_set1_epi64x(1);
  }
  alignas(32) uint8_t tail[kTileCols][kHalfBytes];
  for (int32_t half = 0; half < shape.halves; ++half) {
    const int32_t offset = half * kHalfBytes;
    const uint8_t* w[kTileCols];
    for (int c = 0; c < kTileCols; ++c) {
      if (half < shape.full_halves) {
        w[c] = block.w[c] + offset;
      } else {  // past K the centred codes are zero: the padding's value does not matter, only not reading it
        for (int32_t i = 0; i < kHalfBytes; ++i) tail[c][i] = offset + i < shape.bytes ? block.w[c][offset + i] : 0;
        w[c] = tail[c];
      }
    }
    const RowInputs in0 = row_inputs<PACKED, PAIRS>(a, i0, half);
    const RowInputs in1 = MR > 1 ? row_inputs<PACKED, PAIRS>(a, i0 + 1, half) : in0;
    const auto column = [&](int c, __m256i& row0, __m256i& row1) {
      __m256i wu, wv;
      avx2::weight_operands<PACKED>(load(w[c]), wu, wv);
      row0 = _mm256_add_epi64(row0, weighted_dot<PACKED, PAIRS>(wu, wv, in0));
      if constexpr (MR > 1) row1 = _mm256_add_epi64(row1, weighted_dot<PACKED, PAIRS>(wu, wv, in1));
    };
    column(0, acc00, acc10);
    column(1, acc01, acc11);
    column(2, acc02, acc12);
    column(3, acc03, acc13);
    if constexpr (WEIGHTS != Weights::kPerRow) {
      if (WEIGHTS == Weights::kGroups && (half + 1) % shape.halves_per_group != 0) continue;
      // The group(s) ending with this half: D_(t,h) is lane 2q of the driver's terms, q the group's first quad.
      const int32_t first = WEIGHTS == Weights::kHalfGroups ? 2 * half : half / shape.halves_per_group;
      const int32_t last = WEIGHTS == Weights::kHalfGroups && 2 * half + 1 < shape.groups ? first + 1 : first;
      const auto flush = [&](int32_t t, __m256i& c0, __m256i& c1, __m256i& c2, __m256i& c3, __m256i& out) {
        const int64_t* d = a.token_terms + static_cast<size_t>(t) * a.token_terms_stride;
        const auto d_of = [&](int32_t g) { return d[2 * static_cast<size_t>(g) * shape.group_bytes / kQuadBytes]; };
        __m256i low, high;
        column_sums(c0, c1, c2, c3, low, high);
        if constexpr (WEIGHTS == Weights::kHalfGroups) {
          out = _mm256_add_epi64(out, group_term(low, d_of(first), block, first, rounding));
          if (last != first) out = _mm256_add_epi64(out, group_term(high, d_of(last), block, last, rounding));
        } else {
          out = _mm256_add_epi64(out, group_term(_mm256_add_epi64(low, high), d_of(first), block, first, rounding));
        }
        c0 = c1 = c2 = c3 = zero;
      };
      flush(i0, acc00, acc01, acc02, acc03, out0);
      if constexpr (MR > 1) flush(i0 + 1, acc10, acc11, acc12, acc13, out1);
    }
  }
  if constexpr (WEIGHTS == Weights::kPerRow) {
    store_per_row(acc00, acc01, acc02, acc03, block, a, i0);
    if constexpr (MR > 1) store_per_row(acc10, acc11, acc12, acc13, block, a, i0 + 1);
  } else {
    store_lanes(out0, block, block.out + static_cast<size_t>(i0) * a.out_stride);
    if constexpr (MR > 1) store_lanes(out1, block, block.out + static_cast<size_t>(i0 + 1) * a.out_stride);
  }
}

using TileFunction = void (*)(const ActGroupDotArgs&, const Shape&, const ColumnBlock&, int32_t);

template <bool PACKED, bool PAIRS, Weights WEIGHTS>
TileFunction tile_for_rows(int32_t rows) {
  return rows == 1 ? tile<1, PACKED, PAIRS, WEIGHTS> : tile<2, PACKED, PAIRS, WEIGHTS>;
}

template <bool PACKED, bool PAIRS>
TileFunction tile_for_weights(int32_t rows, Weights weights) {
  switch (weights) {
    case Weights::kPerRow: return tile_for_rows<PACKED, PAIRS, Weights::kPerRow>(rows);
    case Weights::kGroups: return tile_for_rows<PACKED, PAIRS, Weights::kGroups>(rows);
    case Weights::kHalfGroups: return tile_for_rows<PACKED, PAIRS, Weights::kHalfGroups>(rows);
  }
  return nullptr;
}

// Byte lanes hold 4 codes, so with A a multiple of 8 they are always paired.
TileFunction tile_function(int32_t rows, bool packed, bool pairs, Weights weights) {
  if (!packed) return tile_for_weights<false, true>(rows, weights);
  return pairs ? tile_for_weights<true, true>(rows, weights) : tile_for_weights<true, false>(rows, weights);
}

void act_group_dot(const ActGroupDotArgs& a) {
  const bool packed = a.format == WeightFormat::kPacked4;
  const int32_t lane_codes = (packed ? 2 : 1) * kActGroupStepBytes / kActGroupLanes;  // 8 or 4
  const bool pairs = a.act_group % (2 * lane_codes) == 0;
  Shape shape{};
  shape.bytes = packed ? (a.k + 1) / 2 : a.k;
  shape.halves = (shape.bytes + kHalfBytes - 1) / kHalfBytes;
  shape.full_halves = shape.bytes / kHalfBytes;
  shape.mantissa_bits = a.mantissa_bits;
  Weights weights = Weights::kPerRow;
  if (a.weight_group > 0) {
    shape.groups = a.k / a.weight_group;
    shape.group_bytes = packed ? a.weight_group / 2 : a.weight_group;
    shape.halves_per_group = shape.group_bytes / kHalfBytes;  // 0: two groups per half
    weights = shape.halves_per_group == 0 ? Weights::kHalfGroups : Weights::kGroups;
  }
  for (int32_t j0 = 0; j0 < a.cols; j0 += kTileCols) {
    const ColumnBlock block = act_group_column_block(a, j0);
    for (int32_t i0 = 0; i0 < a.rows; i0 += kTileRows) {
      const int32_t mr = a.rows - i0 < kTileRows ? a.rows - i0 : kTileRows;
      tile_function(mr, packed, pairs, weights)(a, shape, block, i0);
    }
  }
}

}  // namespace

const ActGroupDotIsa kActGroupDotAvx2{"avx2", act_group_dot};

}  // namespace illm::optimized
