#include "kernels/optimized/act_group_linear.h"

#include <algorithm>
#include <vector>

#include "kernels/activation_groups.h"
#include "kernels/integer_math.h"
#include "kernels/optimized/linear.h"
#include "kernels/optimized/linear_tiles.h"

namespace illm::optimized {
namespace {

constexpr int64_t kLambdaLimit = int64_t{1} << 31;  // λ is an int32 lane of vpmuldq

struct ActGroupScratch {
  std::vector<int8_t> x;             // centred codes, [rows][steps · step codes]
  std::vector<int8_t> centred;       // one row's centred codes in natural order (packed weights)
  std::vector<int32_t> lambdas;      // [rows][steps][16]
  std::vector<int64_t> group_terms;  // D_(t,h), [rows][weight groups]
  std::vector<int64_t> token_terms;  // what the kernel reads (act_group_dot.h)
};
ActGroupScratch& act_group_scratch() {
  thread_local ActGroupScratch scratch;
  return scratch;
}

}  // namespace

const ActGroupDotIsa kActGroupDotNone{"none", nullptr};

ActGroupColumnBlock act_group_column_block(const ActGroupDotArgs& a, int32_t j0) {
  ActGroupColumnBlock block;
  block.cols = std::min(a.cols - j0, kActGroupBlockRows);
  for (int32_t c = 0; c < kActGroupBlockRows; ++c)
    block.w[c] = a.w + static_cast<size_t>(j0 + std::min(c, block.cols - 1)) * a.w_stride;
  if (a.weight_group > 0) {
    const size_t terms_per_block = static_cast<size_t>(a.k / a.weight_group) * kActGroupBlockRows;
    block.terms = a.terms + static_cast<size_t>(j0 / kActGroupBlockRows) * terms_per_block;
  } else {
    block.zero_points = a.zero_points + j0;
    block.mantissas = a.mantissas + j0;
  }
  block.out = a.out + j0;
  return block;
}

void act_group_store_per_row(const int64_t (&sums)[kActGroupBlockRows], const ActGroupColumnBlock& block,
                             const ActGroupDotArgs& a, int32_t t) {
  const uint64_t d = static_cast<uint64_t>(a.token_terms[static_cast<size_t>(t) * a.token_terms_stride]);
  int64_t* out = block.out + static_cast<size_t>(t) * a.out_stride;
  const int s = a.mantissa_bits;
  for (int32_t c = 0; c < block.cols; ++c) {
    const auto centred = static_cast<int64_t>(static_cast<uint64_t>(sums[c]) -
                                              static_cast<uint64_t>(int64_t{block.zero_points[c]}) * d);
    out[c] = static_cast<int64_t>(static_cast<uint64_t>(rshr(centred, s)) * static_cast<uint64_t>(block.mantissas[c]));
  }
}

bool act_group_linear_applies(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& prepared) {
  const QuantizedLinear& w = *prepared.weight;
  const int32_t w_group = w.group_size;
  const bool weight_ok = !weight_per_group(w) ||
                         ((w_group == 32 || w_group == 64 || w_group == 128) && !prepared.group_terms.empty());
  return isa.act_groups.act_group_dot != nullptr && x.bits <= 7 && x.group_size >= 8 && x.group_size % 8 == 0 &&
         w.bits <= 8 && w.in_features > 0 && weight_ok;
}

bool act_group_linear_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& prepared,
                                 std::span<const int64_t> lambdas, AlignedAccumulator& out) {
  const QuantizedLinear& w = *prepared.weight;
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features, group = x.group_size;
  const int32_t groups = act_group_count(k, group);
  const bool packed = weight_format(w.bits) == WeightFormat::kPacked4, grouped_weight = weight_per_group(w);
  const int32_t w_groups = grouped_weight ? weight_groups(w) : 1, w_group = grouped_weight ? w.group_size : k;
  const int32_t step_codes = packed ? 2 * kActGroupStepBytes : kActGroupStepBytes;
  const int32_t row_bytes = packed ? (k + 1) / 2 : k;
  const int32_t steps = (row_bytes + kActGroupStepBytes - 1) / kActGroupStepBytes;
  const size_t x_stride = static_cast<size_t>(steps) * step_codes;
  const size_t lambdas_stride = static_cast<size_t>(steps) * kActGroupLanes;
  for (const int64_t lambda : lambdas)
    if (lambda < 0 || lambda >= kLambdaLimit) return false;

  // Centred codes in the step layout (packed: per 128 codes the even ones, then the odd ones), zero past K, and
  // D_(t,h) = Σ_(a in h) λ_(t,a)·Σ (X − z_(t,a)). Centred in natural order first (one simple loop per group), then
  // split into even and odd codes.
  ActGroupScratch& s = act_group_scratch();
  s.x.assign(static_cast<size_t>(rows) * x_stride, 0);
  if (packed) s.centred.resize(x_stride);
  s.group_terms.assign(static_cast<size_t>(rows) * w_groups, 0);
  for (int32_t t = 0; t < rows; ++t) {
    const uint16_t* codes = x.codes.data() + static_cast<size_t>(t) * k;
    int8_t* dst = s.x.data() + static_cast<size_t>(t) * x_stride;
    int8_t* centred = packed ? s.centred.data() : dst;
    int32_t out_of_range = 0;
    for (int32_t g = 0; g < groups; ++g) {
      const size_t tg = static_cast<size_t>(t) * groups + g;
      const int32_t z = x.zero_points[tg], begin = g * group, end = std::min(k, begin + group);
      int32_t sum = 0;  // |sum| <= 128·A
      for (int32_t c = begin; c < end; ++c) {
        const int32_t v = int32_t{codes[c]} - z;
        out_of_range |= (v + 128) & ~0xFF;  // nonzero unless v ∈ [−128, 127]
        sum += v;
        centred[c] = static_cast<int8_t>(v);
      }
      s.group_terms[static_cast<size_t>(t) * w_groups + begin / w_group] += lambdas[tg] * sum;
    }
    if (out_of_range != 0) return false;
    if (!packed) continue;
    std::fill(centred + k, centred + x_stride, int8_t{0});
    for (size_t base = 0; base < x_stride; base += static_cast<size_t>(step_codes))
      for (size_t i = 0; i < static_cast<size_t>(kActGroupStepBytes); ++i) {
        dst[base + i] = centred[base + 2 * i];
        dst[base + kActGroupStepBytes + i] = centred[base + 2 * i + 1];
      }
  }
  // λ of every lane: a lane holds 8 packed codes or 4 byte codes, all in one group (A a multiple of 8), so each
  // group's λ fills A / lane codes lanes (the short last group and the padding past K: as many as are left).
  s.lambdas.assign(static_cast<size_t>(rows) * lambdas_stride, 0);
  const size_t lane_codes = static_cast<size_t>(step_codes / kActGroupLanes);
  const size_t lanes_per_group = static_cast<size_t>(group) / lane_codes;
  for (int32_t t = 0; t < rows; ++t) {
    int32_t* lanes = s.lambdas.data() + static_cast<size_t>(t) * lambdas_stride;
    for (int32_t g = 0; g < groups; ++g) {
      const size_t first = static_cast<size_t>(g) * lanes_per_group;
      std::fill_n(lanes + first, std::min(lanes_per_group, lambdas_stride - first),
                  static_cast<int32_t>(lambdas[static_cast<size_t>(t) * groups + g]));
    }
  }
  // The kernel's D terms: one per row for a per-row weight; per step, lane 2q + c = D of quad q's weight group.
  size_t terms_stride = 1;
  if (grouped_weight) {
    const int32_t quad_codes = step_codes / kActGroupQuads;
    terms_stride = static_cast<size_t>(steps) * 8;
    s.token_terms.assign(static_cast<size_t>(rows) * terms_stride, 0);
    for (int32_t t = 0; t < rows; ++t)
      for (int32_t step = 0; step < steps; ++step)
        for (int32_t q = 0; q < kActGroupQuads; ++q) {
          const int32_t h = (step * step_codes + q * quad_codes) / w_group;
          if (h >= w_groups) continue;
          const int64_t d = s.group_terms[static_cast<size_t>(t) * w_groups + h];
          int64_t* lanes = s.token_terms.data() + static_cast<size_t>(t) * terms_stride + step * 8 + 2 * q;
          lanes[0] = lanes[1] = d;
        }
  }
  const int64_t* token_terms = grouped_weight ? s.token_terms.data() : s.group_terms.data();

  const size_t w_stride = weight_row_bytes(w);
  parallel_tiles(rows, n, k, [&](const TaskTile& tile) {
    const int32_t t0 = tile.t0, j0 = tile.j0;
    ActGroupDotArgs a;
    a.x = s.x.data() + static_cast<size_t>(t0) * x_stride;
    a.x_stride = x_stride;
    a.lambdas = s.lambdas.data() + static_cast<size_t>(t0) * lambdas_stride;
    a.lambdas_stride = lambdas_stride;
    a.token_terms = token_terms + static_cast<size_t>(t0) * terms_stride;
    a.token_terms_stride = terms_stride;
    a.rows = tile.t1 - t0;
    a.w = w.codes.data() + static_cast<size_t>(j0) * w_stride;
    a.w_stride = w_stride;
    a.cols = tile.cols;
    a.k = k;
    a.act_group = group;
    a.format = weight_format(w.bits);
    a.mantissa_bits = prepared.mantissa_bits;
    if (grouped_weight) {
      a.weight_group = w_group;
      a.terms = prepared.group_terms.data() + static_cast<size_t>(j0) * w_groups;  // 4 rows span 4 · groups
    } else {
      a.zero_points = w.zero_points.data() + j0;
      a.mantissas = prepared.alignment.mantissas.data() + j0;
    }
    a.out = out.values.data() + static_cast<size_t>(t0) * n + j0;
    a.out_stride = static_cast<size_t>(n);
    isa.act_groups.act_group_dot(a);
  });
  return true;
}

}  // namespace illm::optimized
