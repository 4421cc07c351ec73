#include "kernels/reference/rope.h"

#include <string>

#include "kernels/error.h"
#include "kernels/integer_math.h"

namespace illm {

RopeTableView rope_table_view(const QuantizedModel& model) {
  RopeTableView view;
  view.max_positions = model.shape.max_positions;
  view.half_dim = model.shape.head_dim / 2;
  view.frac_bits = model.rope_frac_bits;
  const size_t expected = static_cast<size_t>(view.max_positions) * static_cast<size_t>(view.half_dim);
  if (model.rope_cos.size() != expected || model.rope_sin.size() != expected)
    throw Error("RoPE: tables rope_cos/rope_sin have " + std::to_string(model.rope_cos.size()) + "/" +
                std::to_string(model.rope_sin.size()) + " entries, expected max_positions·head_dim/2 = " +
                std::to_string(expected));
  view.cos = model.rope_cos;
  view.sin = model.rope_sin;
  return view;
}

void rope_rotate_head(std::span<int32_t> head, int position, const RopeTableView& tables) {
  const size_t half = static_cast<size_t>(tables.half_dim);
  if (tables.half_dim < 1 || head.size() != 2 * half)
    throw Error("RoPE: head vector of " + std::to_string(head.size()) + " values for tables of half width " +
                std::to_string(tables.half_dim));
  if (position < 0 || position >= tables.max_positions)
    throw Error("RoPE: position " + std::to_string(position) + " outside the tables [0, " +
                std::to_string(tables.max_positions) + ")");
  if (tables.frac_bits < 1 || tables.frac_bits > 30) throw Error("RoPE: frac_bits outside [1, 30]");
  const size_t row = static_cast<size_t>(position) * half;
  if (tables.cos.size() < row + half || tables.sin.size() < row + half) throw Error("RoPE: tables shorter than declared");
  const int16_t* cos_row = tables.cos.data() + row;
  const int16_t* sin_row = tables.sin.data() + row;
  for (size_t i = 0; i < half; ++i) {
    const int64_t x_lo = head[i], x_hi = head[i + half];
    const int64_t c = cos_row[i], s = sin_row[i];
    head[i] = saturate_cast<int32_t>(rshr(x_lo * c - x_hi * s, tables.frac_bits));
    head[i + half] = saturate_cast<int32_t>(rshr(x_hi * c + x_lo * s, tables.frac_bits));
  }
}

void rope_rotate_row(std::span<int32_t> row, int head_dim, int position, const RopeTableView& tables) {
  if (head_dim != 2 * tables.half_dim || row.size() % static_cast<size_t>(head_dim) != 0)
    throw Error("RoPE: row of " + std::to_string(row.size()) + " values is not a whole number of heads of " +
                std::to_string(head_dim));
  for (size_t start = 0; start < row.size(); start += static_cast<size_t>(head_dim))
    rope_rotate_head(row.subspan(start, static_cast<size_t>(head_dim)), position, tables);
}

}  // namespace illm
