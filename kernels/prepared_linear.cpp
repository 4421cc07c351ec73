#include "kernels/prepared_linear.h"

#include <string>

#include "kernels/error.h"
#include "kernels/weight_codes.h"

namespace illm {

PreparedLinear prepare_linear(const QuantizedLinear& weight, int mantissa_bits, const char* what) {
  if (mantissa_bits < 1 || mantissa_bits > 24)
    throw Error(std::string(what) + ": mantissa_bits " + std::to_string(mantissa_bits) + " outside [1, 24]");
  PreparedLinear p;
  p.weight = &weight;
  p.mantissa_bits = mantissa_bits;
  const size_t group = static_cast<size_t>(weight_group_size(weight));
  const size_t groups = static_cast<size_t>(weight_groups(weight));
  p.code_sums.assign(static_cast<size_t>(weight.out_features) * groups, 0);
  std::vector<uint8_t> row(static_cast<size_t>(weight.in_features));
  for (int32_t j = 0; j < weight.out_features; ++j) {
    unpack_weight_row(weight, j, row);
    for (size_t c = 0; c < row.size(); ++c) p.code_sums[static_cast<size_t>(j) * groups + c / group] += row[c];
  }
  try {
    p.alignment = align_columns(weight.scales, mantissa_bits);
  } catch (const Error& e) {
    throw Error(std::string(what) + ": " + e.what());
  }
  return p;
}

}  // namespace illm
