#include "kernels/optimized/grouped_linear.h"

#include <algorithm>

#include "kernels/optimized/linear.h"
#include "kernels/optimized/linear_tiles.h"

namespace illm::optimized {
namespace {

constexpr int32_t kStepBytes = kGroupedQuadBytes * kGroupedQuadsPerStep;
constexpr int32_t kLanesPerQuad = 4;

struct GroupedScratch {
  PackedActivations x;
  std::vector<int32_t> quad_sums;
};
GroupedScratch& grouped_scratch() {
  thread_local GroupedScratch scratch;
  return scratch;
}

}  // namespace

const GroupedDotIsa kGroupedDotNone{"none", nullptr};

GroupedColumnBlock grouped_column_block(const GroupedDotArgs& a, int32_t j0) {
  GroupedColumnBlock block;
  block.cols = std::min(a.cols - j0, kGroupedBlockRows);
  for (int32_t c = 0; c < kGroupedBlockRows; ++c)
    block.w[c] = a.w + static_cast<size_t>(j0 + std::min(c, block.cols - 1)) * a.w_stride;
  const size_t terms_per_block = static_cast<size_t>(a.k / a.group) * kGroupedBlockRows;
  block.terms = a.terms + static_cast<size_t>(j0 / kGroupedBlockRows) * terms_per_block;
  block.gamma = a.gamma + j0;
  block.out = a.out + j0;
  return block;
}

void grouped_store_row(const uint64_t (&sums)[kGroupedBlockRows], const GroupedColumnBlock& block, int32_t zero_point,
                       int64_t* out) {
  const uint64_t z1 = static_cast<uint64_t>(int64_t{zero_point});
  for (int32_t c = 0; c < block.cols; ++c) out[c] = static_cast<int64_t>(sums[c] - block.gamma[c] * z1);
}

bool grouped_linear_applies(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& w) {
  const QuantizedLinear& weight = *w.weight;
  const int32_t group = weight.group_size;
  return isa.grouped.grouped_dot != nullptr && weight_per_group(weight) && (group == 32 || group == 64 || group == 128) &&
         weight.bits <= 8 && x.bits <= 8 && !w.group_terms.empty();
}

void grouped_linear_accumulate(const Isa& isa, const QuantizedActivation& x, const PreparedLinear& prepared,
                               AlignedAccumulator& out) {
  const QuantizedLinear& w = *prepared.weight;
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features, groups = weight_groups(w);
  const WeightFormat format = weight_format(w.bits);
  const bool packed = format == WeightFormat::kPacked4;
  GroupedScratch& s = grouped_scratch();
  pack_activations(isa.dot.layout, format, x.codes.data(), static_cast<size_t>(k), rows, k, s.x);

  // RS of every quad of every row, repeated over the 4 lanes the kernel multiplies it with.
  const int32_t quad_codes = packed ? 2 * kGroupedQuadBytes : kGroupedQuadBytes;
  const int32_t steps = ((packed ? k / 2 : k) + kStepBytes - 1) / kStepBytes;
  const size_t sums_stride = static_cast<size_t>(steps) * kGroupedQuadsPerStep * kLanesPerQuad;
  s.quad_sums.assign(static_cast<size_t>(rows) * sums_stride, 0);
  for (int32_t t = 0; t < rows; ++t) {
    const uint16_t* codes = x.codes.data() + static_cast<size_t>(t) * k;
    int32_t* sums = s.quad_sums.data() + static_cast<size_t>(t) * sums_stride;
    for (int32_t start = 0, quad = 0; start < k; start += quad_codes, ++quad) {
      int32_t sum = 0;
      for (int32_t c = start; c < std::min(k, start + quad_codes); ++c) sum += codes[c];
      std::fill_n(sums + static_cast<size_t>(quad) * kLanesPerQuad, kLanesPerQuad, sum);
    }
  }

  const size_t row_bytes = weight_row_bytes(w);
  const size_t terms_per_row = static_cast<size_t>(groups);  // the terms of 4 rows span 4 · groups entries
  parallel_tiles(rows, n, k, [&](const TaskTile& tile) {
    const int32_t t0 = tile.t0, j0 = tile.j0;
    GroupedDotArgs a;
    a.x = s.x.codes.data() + static_cast<size_t>(t0) * s.x.stride;
    a.x_stride = s.x.stride;
    a.quad_sums = s.quad_sums.data() + static_cast<size_t>(t0) * sums_stride;
    a.quad_sums_stride = sums_stride;
    a.zero_points = x.zero_points.data() + t0;
    a.rows = tile.t1 - t0;
    a.w = w.codes.data() + static_cast<size_t>(j0) * row_bytes;
    a.w_stride = row_bytes;
    a.cols = tile.cols;
    a.terms = prepared.group_terms.data() + static_cast<size_t>(j0) * terms_per_row;
    a.gamma = prepared.group_gamma.data() + j0;
    a.k = k;
    a.group = w.group_size;
    a.format = format;
    a.out = out.values.data() + static_cast<size_t>(t0) * n + j0;
    a.out_stride = static_cast<size_t>(n);
    isa.grouped.grouped_dot(a);
  });
}

}  // namespace illm::optimized
