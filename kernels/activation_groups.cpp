// Per-group activation codes from a site's per-row values. See activation_groups.h.
#include "kernels/activation_groups.h"

#include <string>
#include <utility>
#include <vector>

#include "kernels/error.h"

namespace illm {

void center_codes(const QuantizedActivation& x, AlignedAccumulator& out) {
  if (x.group_size != 0) throw Error("center_codes: the input has per-group codes");
  out.rows = x.rows;
  out.cols = x.cols;
  out.values.resize(x.codes.size());
  out.scales.assign(x.scales.begin(), x.scales.end());
  for (int32_t t = 0; t < x.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * static_cast<size_t>(x.cols);
    const int64_t z = x.zero_points[t];
    for (int32_t c = 0; c < x.cols; ++c) out.values[offset + c] = int64_t{x.codes[offset + c]} - z;
  }
}

void requantize_groups(RequantizeOperator requantize, AlignedAccumulator& acc, int32_t group_size, int out_bits,
                       int mantissa_bits, QuantizedActivation& out, RequantClip clip) {
  if (group_size < 1 || acc.cols % group_size != 0)
    throw Error("requantize_groups: group size " + std::to_string(group_size) + " does not divide the " +
                std::to_string(acc.cols) + " columns");
  const int32_t rows = acc.rows, cols = acc.cols, groups = cols / group_size;
  // One group per row: the values stay where they are, each group row takes its token's dyadic.
  std::vector<Dyadic> group_scales(static_cast<size_t>(rows) * static_cast<size_t>(groups));
  for (int32_t t = 0; t < rows; ++t)
    for (int32_t g = 0; g < groups; ++g) group_scales[static_cast<size_t>(t) * groups + g] = acc.scales[t];
  std::swap(acc.scales, group_scales);
  acc.rows = rows * groups;
  acc.cols = group_size;
  try {
    requantize(acc, out_bits, mantissa_bits, out, clip);
  } catch (...) {
    std::swap(acc.scales, group_scales);
    acc.rows = rows;
    acc.cols = cols;
    throw;
  }
  std::swap(acc.scales, group_scales);
  acc.rows = rows;
  acc.cols = cols;
  out.rows = rows;
  out.cols = cols;
  out.group_size = group_size;
}

}  // namespace illm
