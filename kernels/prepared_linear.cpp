#include "kernels/prepared_linear.h"

#include <string>

#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

constexpr size_t kTermBlockRows = 4;

void prepare_group_terms(const QuantizedLinear& weight, PreparedLinear& p) {
  const size_t n = static_cast<size_t>(weight.out_features), groups = static_cast<size_t>(weight_groups(weight));
  const int64_t group = weight_group_size(weight);
  p.group_terms.assign((n + kTermBlockRows - 1) / kTermBlockRows * groups * kTermBlockRows, 0);
  p.group_gamma.assign(n, 0);
  for (size_t j = 0; j < n; ++j)
    for (size_t g = 0; g < groups; ++g) {
      const size_t index = j * groups + g;
      const uint64_t mu = static_cast<uint64_t>(p.alignment.mantissas[index]);  // < 2^24 (align_columns)
      const int64_t z = weight.zero_points[index];                              // < 2^8
      p.group_terms[(j / kTermBlockRows * groups + g) * kTermBlockRows + j % kTermBlockRows] =
          static_cast<uint32_t>(mu | static_cast<uint64_t>(z) << 24);
      p.group_gamma[j] += mu * static_cast<uint64_t>(p.code_sums[index] - group * z);
    }
}

}  // namespace

PreparedLinear prepare_linear(const QuantizedLinear& weight, int mantissa_bits, const char* what,
                              int32_t act_group_size) {
  if (mantissa_bits < 1 || mantissa_bits > 24)
    throw Error(std::string(what) + ": mantissa_bits " + std::to_string(mantissa_bits) + " outside [1, 24]");
  PreparedLinear p;
  p.weight = &weight;
  p.mantissa_bits = mantissa_bits;
  const size_t group = static_cast<size_t>(weight_group_size(weight));
  const size_t groups = static_cast<size_t>(weight_groups(weight));
  p.code_sums.assign(static_cast<size_t>(weight.out_features) * groups, 0);
  // A per-row weight takes any A (its last activation group may be short); weight groups must hold whole ones.
  const bool act_groups =
      act_group_size > 0 && (!weight_per_group(weight) || weight_group_size(weight) % act_group_size == 0);
  const size_t out = static_cast<size_t>(weight.out_features);
  if (act_groups) {
    p.act_group_size = act_group_size;
    p.act_group_code_sums.assign(static_cast<size_t>(act_group_count(weight.in_features, act_group_size)) * out, 0);
  }
  std::vector<uint8_t> row(static_cast<size_t>(weight.in_features));
  for (int32_t j = 0; j < weight.out_features; ++j) {
    unpack_weight_row(weight, j, row);
    for (size_t c = 0; c < row.size(); ++c) p.code_sums[static_cast<size_t>(j) * groups + c / group] += row[c];
    if (act_groups)
      for (size_t c = 0; c < row.size(); ++c)
        p.act_group_code_sums[c / static_cast<size_t>(act_group_size) * out + static_cast<size_t>(j)] += row[c];
  }
  try {
    p.alignment = align_columns(weight.scales, mantissa_bits);
  } catch (const Error& e) {
    throw Error(std::string(what) + ": " + e.what());
  }
  if (weight_per_group(weight) && weight.bits <= 8) prepare_group_terms(weight, p);
  if (act_groups && weight_per_group(weight)) {
    const size_t groups_w = static_cast<size_t>(weight_groups(weight));
    p.weight_group_zero_points_by_group.resize(out * groups_w);
    p.weight_group_mantissas_by_group.resize(out * groups_w);
    for (size_t j = 0; j < out; ++j)
      for (size_t h = 0; h < groups_w; ++h) {
        p.weight_group_zero_points_by_group[h * out + j] = weight.zero_points[j * groups_w + h];
        p.weight_group_mantissas_by_group[h * out + j] = p.alignment.mantissas[j * groups_w + h];
      }
  }
  return p;
}

}  // namespace illm
