// DI-MatMul of per-group activations, the reference. See act_group_matmul.h.
#include "kernels/reference/act_group_matmul.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/dot_centered.h"
#include "kernels/weight_codes.h"

namespace illm {

int32_t align_activation_groups(std::span<const Dyadic> scales, std::span<int64_t> lambdas) {
  // An all-zero group (DI_REQUANT's scale (1, 0), codes = zero point = 0) adds nothing to any P: it is left out of
  // the minimum, else its k = 0 would round every other group's mantissa away.
  auto empty = [](const Dyadic& d) { return d.m == 1 && d.k == 0; };
  bool any = false;
  int32_t k1 = 0;
  for (const Dyadic& d : scales) {
    if (empty(d)) continue;
    k1 = any ? std::min(k1, d.k) : d.k;
    any = true;
  }
  for (size_t g = 0; g < scales.size(); ++g) {
    const Dyadic& d = scales[g];
    const int64_t shift = int64_t{d.k} - k1;  // >= 0 by the choice of K1
    lambdas[g] = empty(d) ? 0 : rshr(d.m, static_cast<int>(std::min<int64_t>(shift, 64)));
  }
  return k1;
}

void linear_act_groups_accumulate(const QuantizedActivation& x, const PreparedLinear& prepared,
                                  AlignedAccumulator& out) {
  const QuantizedLinear& w = *prepared.weight;
  const int32_t n = w.out_features, k = w.in_features, group = x.group_size;
  if (x.cols != k)
    throw Error("DI-MatMul (per-group activations): input has " + std::to_string(x.cols) + " columns, weight " +
                std::to_string(k));
  if (group < 1)
    throw Error("DI-MatMul (per-group activations): input group size " + std::to_string(group));
  // Weight groups (h, G columns each) must hold whole activation groups; a per-row weight is one group of all k
  // columns, which may end in a short activation group.
  const int32_t w_group = weight_group_size(w);
  if (weight_per_group(w) && w_group % group != 0)
    throw Error("DI-MatMul (per-group activations): input group size " + std::to_string(group) +
                " does not divide the weight's group size " + std::to_string(w_group));
  const int32_t groups = act_group_count(k, group), w_groups = k / w_group;
  const int32_t per_weight_group = weight_per_group(w) ? w_group / group : groups;
  const size_t scale_count = static_cast<size_t>(x.rows) * static_cast<size_t>(groups);
  if (x.zero_points.size() != scale_count || x.scales.size() != scale_count)
    throw Error("DI-MatMul (per-group activations): input has " + std::to_string(x.scales.size()) +
                " scales for " + std::to_string(scale_count) + " (token, group)s");
  const int b_m = prepared.mantissa_bits;
  const int64_t q1 = (int64_t{1} << x.bits) - 1, q2 = (int64_t{1} << w.bits) - 1;
  const bool use_int32 = accumulator_kind_for_bound(group, q1, q2) == AccumulatorKind::kInt32;

  out.rows = x.rows;
  out.cols = n;
  out.values.assign(static_cast<size_t>(x.rows) * static_cast<size_t>(n), 0);
  out.scales.resize(static_cast<size_t>(x.rows));
  std::vector<int64_t> lambdas(scale_count);
  for (int32_t t = 0; t < x.rows; ++t) {
    const size_t first = static_cast<size_t>(t) * groups;
    const int32_t k1 = align_activation_groups(std::span<const Dyadic>(x.scales.data() + first, groups),
                                               std::span<int64_t>(lambdas.data() + first, groups));
    out.scales[t] = Dyadic{1, k1 - b_m + prepared.alignment.exponent};
  }
  std::vector<uint8_t> w_row(static_cast<size_t>(k));
  for (int32_t j = 0; j < n; ++j) {
    unpack_weight_row(w, j, w_row);
    for (int32_t t = 0; t < x.rows; ++t) {
      const uint16_t* x_row = x.codes.data() + static_cast<size_t>(t) * x.cols;
      const size_t first = static_cast<size_t>(t) * groups;
      int64_t total = 0;  // P'_tj
      for (int32_t h = 0; h < w_groups; ++h) {
        const size_t jh = static_cast<size_t>(j) * w_groups + h;
        const int32_t z2 = w.zero_points[jh];
        int64_t sum = 0;  // T_(t,j,h) (S_tj for a per-row weight)
        for (int32_t g = h * per_weight_group; g < (h + 1) * per_weight_group; ++g) {
          const size_t begin = static_cast<size_t>(g) * group;
          const int64_t p = dot_centered(use_int32, x_row + begin, x.zero_points[first + g], w_row.data() + begin,
                                         z2, act_group_width(k, group, g));  // P_(t,j,g)
          sum += p * lambdas[first + g];
        }
        total += rshr(sum, b_m) * prepared.alignment.mantissas[jh];
      }
      out.values[static_cast<size_t>(t) * n + j] = total;
    }
  }
}

}  // namespace illm
