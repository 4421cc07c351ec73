// Per-group activation codes from a site's per-row values. See activation_groups.h.
#include "kernels/activation_groups.h"

#include <algorithm>
#include <string>
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

namespace {

// A short last group: requantize a copy whose rows are padded to whole groups (each row's last value repeated), then
// keep each row's first `cols` codes. Only for widths G does not divide (stories260K's intermediate 172).
void requantize_padded_groups(RequantizeOperator requantize, const AlignedAccumulator& acc, int32_t group_size,
                              int out_bits, int mantissa_bits, QuantizedActivation& out, RequantClip clip) {
  const int32_t rows = acc.rows, cols = acc.cols, padded_cols = act_group_count(cols, group_size) * group_size;
  thread_local AlignedAccumulator padded;
  padded.rows = rows;
  padded.cols = padded_cols;
  padded.scales.assign(acc.scales.begin(), acc.scales.end());
  padded.values.resize(static_cast<size_t>(rows) * static_cast<size_t>(padded_cols));
  for (int32_t t = 0; t < rows; ++t) {
    const int64_t* from = acc.values.data() + static_cast<size_t>(t) * cols;
    int64_t* to = padded.values.data() + static_cast<size_t>(t) * padded_cols;
    std::copy(from, from + cols, to);
    std::fill(to + cols, to + padded_cols, from[cols - 1]);
  }
  requantize_groups(requantize, padded, group_size, out_bits, mantissa_bits, out, clip);
  for (int32_t t = 0; t < rows; ++t)  // in place, front to back: row t moves to a lower or the same offset
    std::copy_n(out.codes.begin() + static_cast<ptrdiff_t>(t) * padded_cols, cols,
                out.codes.begin() + static_cast<ptrdiff_t>(t) * cols);
  out.codes.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  out.cols = cols;
}

}  // namespace

void requantize_groups(RequantizeOperator requantize, AlignedAccumulator& acc, int32_t group_size, int out_bits,
                       int mantissa_bits, QuantizedActivation& out, RequantClip clip) {
  if (group_size < 1) throw Error("requantize_groups: group size " + std::to_string(group_size));
  if (acc.cols % group_size != 0) {
    if (acc.cols == 0 || acc.rows == 0) throw Error("requantize_groups: an empty accumulator with a short group");
    requantize_padded_groups(requantize, acc, group_size, out_bits, mantissa_bits, out, clip);
    return;
  }
  const int32_t rows = acc.rows, cols = acc.cols;
  const size_t groups = static_cast<size_t>(cols / group_size);
  // One group per row: the values stay where they are, each group row takes its token's dyadic. The scales are
  // expanded in place (from the last row down, so no row's dyadic is overwritten before it is copied) and folded
  // back afterwards: no allocation once the vector has grown.
  std::vector<Dyadic>& scales = acc.scales;
  scales.resize(static_cast<size_t>(rows) * groups);
  for (size_t t = static_cast<size_t>(rows); t-- > 0;) {
    const Dyadic row_scale = scales[t];
    std::fill_n(scales.begin() + static_cast<ptrdiff_t>(t * groups), groups, row_scale);
  }
  const auto restore = [&] {
    for (size_t t = 0; t < static_cast<size_t>(rows); ++t) scales[t] = scales[t * groups];
    scales.resize(static_cast<size_t>(rows));
    acc.rows = rows;
    acc.cols = cols;
  };
  acc.rows = rows * static_cast<int32_t>(groups);
  acc.cols = group_size;
  try {
    requantize(acc, out_bits, mantissa_bits, out, clip);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  out.rows = rows;
  out.cols = cols;
  out.group_size = group_size;
}

}  // namespace illm
