// AVX-512 VNNI one-pass DI-MatMul of per-group activations (act_group_dot.h) on register tiles of up to 4
// activation rows × 4 weight rows. Per 64-byte weight step and pair (t, j), vpdpbusd (u8 = weight codes, s8 = the
// centred activation codes) leaves 16 int32 lanes of C' over 4 weight bytes each: with the even/odd activation
// blocks, one lane of the packed 4-bit layout is codes 8l..8l+7 (low nibbles against the even codes, high against
// the odd), one lane of byte weights codes 4l..4l+3, so every lane lies inside one activation group (A a multiple of
// 8). |C'| <= 8·255·128 < 2^31 and λ < 2^31: vpmuldq of the even and the odd lanes by their λ is exact, and the
// 64-bit lanes sum λ·C' in wrapping arithmetic (exact at the end: the true T fits int64).
// A per-row weight sums the lanes over the whole row, then T − z2·D, rshr and μ are scalar per (t, j). A per-group
// weight (G ∈ {32, 64, 128}) ends 1, 2 or 4 weight groups per step (1 per 2 steps for bytes at G = 128): the lanes of
// a weight group are reduced across the 128-bit quads of the step, four weight rows at a time (lane 2q + c), and T −
// z2·D, rshr and μ run on those vectors (vpmullq; the lanes repeating a group get μ = 0).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni; called only when the CPU has them.

#include "kernels/optimized/act_group_dot.h"
#include "kernels/optimized/avx512vnni_inline.h"

namespace illm::optimized {
namespace {

constexpr int32_t kTileRows = 4, kTileCols = 4;
static_assert(kActGroupStepBytes == vnni::kStepBytes);

// What every tile of one call shares.
struct Shape {
  int32_t bytes;            // weight bytes per row
  int32_t steps;            // 64-byte steps per row
  int32_t groups;           // weight groups per row (per-group weights)
  int32_t quads_per_group;  // 128-bit quads of a step per weight group: 1, 2 or 4 (4 also for two-step groups)
  int32_t group_shift;      // log2 of the quads per weight group (1, 2, 4 or 8): the first group of a step
  int32_t groups_per_step;  // 4 / quads_per_group
  __m512i term_index;       // lane 2q + c (q < 4) ← term (q / quads_per_group)·4 + c; lanes 8.. the same + 2
  __mmask8 first_quads;     // the 64-bit lanes of the first quad of each weight group
  __m128i shift;            // b_m
  int32_t mantissa_bits;
};

using ColumnBlock = ActGroupColumnBlock;
static_assert(kActGroupBlockRows == kTileCols);

// rshr(a, s) for 1 <= s < 64 without the bias overflowing: ⌊a / 2^s⌋ plus bit s − 1 of a.
inline __m512i round_shift(__m512i a, __m128i s, __m128i s_minus_1, __m512i one) {
  return _mm512_add_epi64(_mm512_sra_epi64(a, s), _mm512_and_si512(_mm512_sra_epi64(a, s_minus_1), one));
}

// The 64-bit lanes of Σ λ·C' of one (t, j) and one step: the even int32 lanes times their λ plus the odd ones, or,
// when both lanes of a 64-bit lane lie in one group (PAIRS: A a multiple of 2 lanes' codes), their int32 sum (|C'|
// < 2^19 each) times the one λ: one vpmuldq instead of two.
template <bool PAIRS>
inline __m512i weighted(__m512i c, __m512i lambda, [[maybe_unused]] __m512i lambda_odd) {
  if constexpr (PAIRS) return _mm512_mul_epi32(_mm512_add_epi32(c, _mm512_srli_epi64(c, 32)), lambda);
  return _mm512_add_epi64(_mm512_mul_epi32(c, lambda), _mm512_mul_epi32(_mm512_srli_epi64(c, 32), lambda_odd));
}

// Weight row c's step vector(s) at `offset` (low and high nibbles for packed codes); prefetches the next blocks'.
template <bool PACKED>
inline void load_weights(const ColumnBlock& block, int c, int32_t offset, __mmask64 mask, size_t next_block,
                         __m512i& lo, __m512i& hi) {
  _mm_prefetch(reinterpret_cast<const char*>(block.w[c] + next_block + offset), _MM_HINT_T0);
  const __m512i wv = _mm512_maskz_loadu_epi8(mask, block.w[c] + offset);
  if constexpr (PACKED) {
    const __m512i low_nibble = _mm512_set1_epi8(0x0F);
    lo = _mm512_and_si512(wv, low_nibble);
    hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low_nibble);
  } else {
    lo = wv;
  }
}

// Loads activation row r's step vectors and λ; dot(lo, hi) = the step's int32 C' lanes, weigh(C') its λ·C'.
#define ILLM_ROW_INPUTS(r)                                                                                            \
  const int8_t* xr = a.x + static_cast<size_t>(i0 + (r)) * a.x_stride + static_cast<size_t>(step) * kStepCodes;       \
  const __m512i xa = _mm512_loadu_si512(xr);                                                                          \
  [[maybe_unused]] const __m512i xb = PACKED ? _mm512_loadu_si512(xr + kActGroupStepBytes) : zero;                    \
  const __m512i lambda = _mm512_loadu_si512(a.lambdas + static_cast<size_t>(i0 + (r)) * a.lambdas_stride +            \
                                            static_cast<size_t>(step) * kActGroupLanes);                              \
  const __m512i lambda_odd = PAIRS ? lambda : _mm512_srli_epi64(lambda, 32);                                          \
  const auto dot = [&](__m512i lo, __m512i hi) {                                                                      \
    if constexpr (PACKED) return vnni::dpbusd(vnni::dpbusd(zero, lo, xa), hi, xb);                                    \
    (void)hi;                                                                                                         \
    return vnni::dpbusd(zero, lo, xa);                                                                                \
  };                                                                                                                  \
  const auto weigh = [&](__m512i c) { return weighted<PAIRS>(c, lambda, lambda_odd); };

// ---- Per-row weights: 64-bit lanes summed over the whole row, one scalar epilogue per (t, j).

#define ILLM_ACC(i) __m512i acc##i##0 = zero, acc##i##1 = zero, acc##i##2 = zero, acc##i##3 = zero;
#define ILLM_ROW(i)                                                                                                   \
  if constexpr (MR > i) {                                                                                             \
    ILLM_ROW_INPUTS(i)                                                                                                \
    acc##i##0 = _mm512_add_epi64(acc##i##0, weigh(dot(lo0, hi0)));                                                    \
    acc##i##1 = _mm512_add_epi64(acc##i##1, weigh(dot(lo1, hi1)));                                                    \
    acc##i##2 = _mm512_add_epi64(acc##i##2, weigh(dot(lo2, hi2)));                                                    \
    acc##i##3 = _mm512_add_epi64(acc##i##3, weigh(dot(lo3, hi3)));                                                    \
  }
#define ILLM_STORE(i)                                                                                                 \
  if constexpr (MR > i) {                                                                                             \
    const __m512i sums[kTileCols] = {acc##i##0, acc##i##1, acc##i##2, acc##i##3};                                     \
    store_per_row(sums, block, a, i0 + i);                                                                            \
  }

// The row sums of each column, then the baseline epilogue.
inline void store_per_row(const __m512i (&sums)[kTileCols], const ColumnBlock& block, const ActGroupDotArgs& a,
                          int32_t t) {
  int64_t totals[kTileCols];
  for (int32_t c = 0; c < kTileCols; ++c) totals[c] = _mm512_reduce_add_epi64(sums[c]);
  act_group_store_per_row(totals, block, a, t);
}

template <int MR, bool PACKED, bool PAIRS>
void tile_per_row(const ActGroupDotArgs& a, const Shape& shape, const ColumnBlock& block, int32_t i0) {
  static_assert(MR >= 1 && MR <= kTileRows);
  constexpr size_t kStepCodes = PACKED ? 2 * kActGroupStepBytes : kActGroupStepBytes;
  const __m512i zero = _mm512_setzero_si512();
  ILLM_ACC(0) ILLM_ACC(1) ILLM_ACC(2) ILLM_ACC(3)
  const size_t next_block = 2 * kTileCols * a.w_stride;
  for (int32_t step = 0; step < shape.steps; ++step) {
    const int32_t offset = step * kActGroupStepBytes;
    const __mmask64 mask = vnni::step_mask(shape.bytes - offset);  // past K the centred codes are zero
    __m512i lo0, lo1, lo2, lo3, hi0 = zero, hi1 = zero, hi2 = zero, hi3 = zero;
    load_weights<PACKED>(block, 0, offset, mask, next_block, lo0, hi0);
    load_weights<PACKED>(block, 1, offset, mask, next_block, lo1, hi1);
    load_weights<PACKED>(block, 2, offset, mask, next_block, lo2, hi2);
    load_weights<PACKED>(block, 3, offset, mask, next_block, lo3, hi3);
    ILLM_ROW(0) ILLM_ROW(1) ILLM_ROW(2) ILLM_ROW(3)
  }
  ILLM_STORE(0) ILLM_STORE(1) ILLM_STORE(2) ILLM_STORE(3)
}

#undef ILLM_ACC
#undef ILLM_ROW
#undef ILLM_STORE

// ---- Per-group weights: the weight groups ending in a step are reduced and rounded in vectors of lane 2q + c.

// The terms of weight rows (0, 1) and (2, 3) for the groups of the step: lane 2q + c = (μ, z2) of quad q's group,
// μ = 0 where the lane repeats a group.
struct StepTerms {
  __m512i mu01, z01, mu23, z23;
};

inline StepTerms step_terms(const Shape& shape, const ColumnBlock& block, int32_t step) {
  const int32_t first_group = (step * kActGroupQuads) >> shape.group_shift;
  const int32_t left = shape.groups - first_group;
  const int32_t loaded = left < shape.groups_per_step ? left : shape.groups_per_step;
  const __mmask16 term_mask = static_cast<__mmask16>((1u << (4 * loaded)) - 1);
  const __m512i terms = _mm512_permutexvar_epi32(
      shape.term_index, _mm512_maskz_loadu_epi32(term_mask, block.terms + static_cast<size_t>(first_group) * 4));
  const __m512i t01 = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(terms));
  const __m512i t23 = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(terms, 1));
  const __m512i mantissa_mask = _mm512_set1_epi64(0x00FFFFFF);
  return StepTerms{_mm512_maskz_and_epi64(shape.first_quads, t01, mantissa_mask), _mm512_srli_epi64(t01, 24),
                   _mm512_maskz_and_epi64(shape.first_quads, t23, mantissa_mask), _mm512_srli_epi64(t23, 24)};
}

// T of weight rows (c0, c1) for the groups of the step, lane 2q + c: the quad sums, then summed over the quads of
// one group (every lane of a group holds its T).
inline __m512i group_sums(__m512i c0, __m512i c1, int32_t quads_per_group) {
  __m512i v = _mm512_add_epi64(_mm512_unpacklo_epi64(c0, c1), _mm512_unpackhi_epi64(c0, c1));
  if (quads_per_group >= 2) v = _mm512_add_epi64(v, _mm512_shuffle_i64x2(v, v, 0xB1));  // quads 0↔1, 2↔3
  if (quads_per_group >= 4) v = _mm512_add_epi64(v, _mm512_shuffle_i64x2(v, v, 0x4E));  // halves
  return v;
}

// Σ of rshr(T − z2·D, b_m)·μ over the lanes (the lanes that repeat a group have μ = 0).
inline __m512i group_terms(__m512i t, __m512i d, __m512i z, __m512i mu, const Shape& shape, __m128i shift_minus_1,
                           __m512i one) {
  const __m512i centred = _mm512_sub_epi64(t, _mm512_mullo_epi64(z, d));
  return _mm512_mullo_epi64(round_shift(centred, shape.shift, shift_minus_1, one), mu);
}

#define ILLM_ACC(i)                                                                                                   \
  __m512i out##i##a = zero, out##i##b = zero;                                                                         \
  [[maybe_unused]] __m512i acc##i##0 = zero, acc##i##1 = zero, acc##i##2 = zero, acc##i##3 = zero;
#define ILLM_ROW(i)                                                                                                   \
  if constexpr (MR > i) {                                                                                             \
    ILLM_ROW_INPUTS(i)                                                                                                \
    __m512i p0 = weigh(dot(lo0, hi0)), p1 = weigh(dot(lo1, hi1));                                                     \
    __m512i p2 = weigh(dot(lo2, hi2)), p3 = weigh(dot(lo3, hi3));                                                     \
    if constexpr (TWO_STEPS) {                                                                                        \
      acc##i##0 = _mm512_add_epi64(acc##i##0, p0);                                                                    \
      acc##i##1 = _mm512_add_epi64(acc##i##1, p1);                                                                    \
      acc##i##2 = _mm512_add_epi64(acc##i##2, p2);                                                                    \
      acc##i##3 = _mm512_add_epi64(acc##i##3, p3);                                                                    \
      if (flush) {                                                                                                    \
        p0 = acc##i##0, p1 = acc##i##1, p2 = acc##i##2, p3 = acc##i##3;                                               \
        acc##i##0 = acc##i##1 = acc##i##2 = acc##i##3 = zero;                                                         \
      }                                                                                                               \
    }                                                                                                                 \
    if (flush) {                                                                                                      \
      const __m512i d = _mm512_loadu_si512(a.token_terms + static_cast<size_t>(i0 + i) * a.token_terms_stride +       \
                                           static_cast<size_t>(step) * 8);                                            \
      out##i##a = _mm512_add_epi64(out##i##a, group_terms(group_sums(p0, p1, shape.quads_per_group), d, terms.z01,    \
                                                          terms.mu01, shape, shift_minus_1, one));                    \
      out##i##b = _mm512_add_epi64(out##i##b, group_terms(group_sums(p2, p3, shape.quads_per_group), d, terms.z23,    \
                                                          terms.mu23, shape, shift_minus_1, one));                    \
    }                                                                                                                 \
  }
#define ILLM_STORE(i)                                                                                                 \
  if constexpr (MR > i)                                                                                               \
    store_per_group(out##i##a, out##i##b, block, block.out + static_cast<size_t>(i0 + i) * a.out_stride);

// out[c] = the sum over the quads of lane 2q + c (rows 0, 1 in `a`, rows 2, 3 in `b`), for the stored rows.
inline void store_per_group(__m512i a, __m512i b, const ColumnBlock& block, int64_t* out) {
  a = _mm512_add_epi64(a, _mm512_shuffle_i64x2(a, a, 0x4E));
  b = _mm512_add_epi64(b, _mm512_shuffle_i64x2(b, b, 0x4E));
  const __m128i a2 = _mm_add_epi64(_mm512_castsi512_si128(a), _mm512_extracti64x2_epi64(a, 1));
  const __m128i b2 = _mm_add_epi64(_mm512_castsi512_si128(b), _mm512_extracti64x2_epi64(b, 1));
  alignas(16) int64_t sums[kTileCols];
  _mm_store_si128(reinterpret_cast<__m128i*>(sums), a2);
  _mm_store_si128(reinterpret_cast<__m128i*>(sums + 2), b2);
  for (int32_t c = 0; c < block.cols; ++c) out[c] = sums[c];
}

template <int MR, bool PACKED, bool PAIRS, bool TWO_STEPS>
void tile_per_group(const ActGroupDotArgs& a, const Shape& shape, const ColumnBlock& block, int32_t i0) {
  static_assert(MR >= 1 && MR <= kTileRows);
  constexpr size_t kStepCodes = PACKED ? 2 * kActGroupStepBytes : kActGroupStepBytes;
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
  const __m128i shift_minus_1 = _mm_cvtsi32_si128(shape.mantissa_bits - 1);
  ILLM_ACC(0) ILLM_ACC(1) ILLM_ACC(2) ILLM_ACC(3)
  const size_t next_block = 2 * kTileCols * a.w_stride;
  for (int32_t step = 0; step < shape.steps; ++step) {
    const int32_t offset = step * kActGroupStepBytes;
    const __mmask64 mask = vnni::step_mask(shape.bytes - offset);
    __m512i lo0, lo1, lo2, lo3, hi0 = zero, hi1 = zero, hi2 = zero, hi3 = zero;
    load_weights<PACKED>(block, 0, offset, mask, next_block, lo0, hi0);
    load_weights<PACKED>(block, 1, offset, mask, next_block, lo1, hi1);
    load_weights<PACKED>(block, 2, offset, mask, next_block, lo2, hi2);
    load_weights<PACKED>(block, 3, offset, mask, next_block, lo3, hi3);
    // A two-step group (bytes, G = 128) ends at odd steps; K is a multiple of G, so the last step is odd too.
    const bool flush = !TWO_STEPS || (step & 1) != 0;
    StepTerms terms{};
    if (flush) terms = step_terms(shape, block, step);
    ILLM_ROW(0) ILLM_ROW(1) ILLM_ROW(2) ILLM_ROW(3)
  }
  ILLM_STORE(0) ILLM_STORE(1) ILLM_STORE(2) ILLM_STORE(3)
}

#undef ILLM_ACC
#undef ILLM_ROW
#undef ILLM_STORE
#undef ILLM_ROW_INPUTS

using TileFunction = void (*)(const ActGroupDotArgs&, const Shape&, const ColumnBlock&, int32_t);

template <int MR, bool PACKED, bool PAIRS>
TileFunction tile_of(bool per_group, bool two_steps) {
  if (!per_group) return tile_per_row<MR, PACKED, PAIRS>;
  return two_steps ? tile_per_group<MR, PACKED, PAIRS, true> : tile_per_group<MR, PACKED, PAIRS, false>;
}

template <bool PACKED, bool PAIRS>
TileFunction tile_for_rows(int32_t rows, bool per_group, bool two_steps) {
  switch (rows) {
    case 1: return tile_of<1, PACKED, PAIRS>(per_group, two_steps);
    case 2: return tile_of<2, PACKED, PAIRS>(per_group, two_steps);
    case 3: return tile_of<3, PACKED, PAIRS>(per_group, two_steps);
    default: return tile_of<4, PACKED, PAIRS>(per_group, two_steps);
  }
}

TileFunction tile_function(int32_t rows, bool packed, bool pairs, bool per_group, bool two_steps) {
  if (packed)
    return pairs ? tile_for_rows<true, true>(rows, per_group, two_steps)
                 : tile_for_rows<true, false>(rows, per_group, two_steps);
  return pairs ? tile_for_rows<false, true>(rows, per_group, two_steps)
               : tile_for_rows<false, false>(rows, per_group, two_steps);
}

void act_group_dot(const ActGroupDotArgs& a) {
  const bool packed = a.format == WeightFormat::kPacked4, per_group = a.weight_group > 0;
  const int32_t lane_codes = (packed ? 2 : 1) * kActGroupStepBytes / kActGroupLanes;  // 8 or 4
  const bool pairs = a.act_group % (2 * lane_codes) == 0;
  Shape shape{};
  shape.bytes = packed ? (a.k + 1) / 2 : a.k;
  shape.steps = (shape.bytes + kActGroupStepBytes - 1) / kActGroupStepBytes;
  shape.mantissa_bits = a.mantissa_bits;
  shape.shift = _mm_cvtsi32_si128(a.mantissa_bits);
  bool two_steps = false;
  if (per_group) {
    const int32_t quad_codes = (packed ? 2 : 1) * kActGroupStepBytes / kActGroupQuads;  // 32 or 16
    const int32_t quads = a.weight_group / quad_codes;                                 // 1, 2, 4 or 8
    two_steps = quads > kActGroupQuads;
    shape.groups = a.k / a.weight_group;
    shape.quads_per_group = two_steps ? kActGroupQuads : quads;
    shape.group_shift = 0;
    while ((2 << shape.group_shift) <= quads) ++shape.group_shift;
    shape.groups_per_step = kActGroupQuads / shape.quads_per_group;
    alignas(64) int32_t index[16];
    for (int32_t lane = 0; lane < 8; ++lane) {
      index[lane] = lane / 2 / shape.quads_per_group * 4 + lane % 2;
      index[8 + lane] = index[lane] + 2;
    }
    shape.term_index = _mm512_load_si512(index);
    uint32_t first = 0;
    for (int32_t q = 0; q < kActGroupQuads; q += shape.quads_per_group) first |= 3u << (2 * q);
    shape.first_quads = static_cast<__mmask8>(first);
  }
  for (int32_t j0 = 0; j0 < a.cols; j0 += kTileCols) {
    const ColumnBlock block = act_group_column_block(a, j0);
    for (int32_t i0 = 0; i0 < a.rows; i0 += kTileRows) {
      const int32_t mr = a.rows - i0 < kTileRows ? a.rows - i0 : kTileRows;
      tile_function(mr, packed, pairs, per_group, two_steps)(a, shape, block, i0);
    }
  }
}

}  // namespace

const ActGroupDotIsa kActGroupDotAvx512Vnni{"avx512vnni", act_group_dot};

}  // namespace illm::optimized
