#include "kernels/reference/head_requant.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/requant.h"

namespace illm {
namespace {
constexpr int kRopeInputBits = 16;  // q/k requantized to int16 symmetric before the rotation (§7.4)

void check_accumulator(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const char* op) {
  if (heads < 1 || head_dim < 1 || acc.cols != heads * head_dim)
    throw Error(std::string(op) + ": accumulator of " + std::to_string(acc.cols) + " columns for " +
                std::to_string(heads) + " heads of " + std::to_string(head_dim));
}
}  // namespace

void resize_per_head(PerHeadActivation& out, int32_t rows, int32_t heads, int32_t head_dim, int32_t bits) {
  out.rows = rows;
  out.heads = heads;
  out.head_dim = head_dim;
  out.bits = bits;
  out.codes.resize(static_cast<size_t>(rows) * heads * head_dim);
  out.zero_points.resize(static_cast<size_t>(rows) * heads);
  out.scales.resize(static_cast<size_t>(rows) * heads);
}

void rope_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                const RopeTableView& rope, const IntegerSettings& settings, int out_bits, PerHeadActivation& out,
                RequantClip clip) {
  check_accumulator(acc, heads, head_dim, "rope_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  std::vector<int32_t> rotated(acc.cols);
  std::vector<int64_t> head(head_dim);
  for (int32_t t = 0; t < acc.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult q16 =
        di_requant_symmetric(std::span<const int64_t>(acc.values.data() + offset, acc.cols), acc.scales[t].m,
                             acc.scales[t].k, kRopeInputBits, settings.mantissa_bits, std::span<int32_t>(rotated));
    rope_rotate_row(rotated, head_dim, first_position + t, rope);
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      std::copy_n(rotated.begin() + static_cast<ptrdiff_t>(h) * head_dim, head_dim, head.begin());
      const DiRequantResult r =
          di_requant(std::span<const int64_t>(head), q16.scale.m, q16.scale.k, out_bits, settings.mantissa_bits,
                     std::span<uint8_t>(out.codes.data() + index * head_dim, static_cast<size_t>(head_dim)), clip);
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
  }
}

void split_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const IntegerSettings& settings,
                 int out_bits, PerHeadActivation& out, RequantClip clip) {
  check_accumulator(acc, heads, head_dim, "split_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  for (int32_t t = 0; t < acc.rows; ++t)
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      const DiRequantResult r = di_requant(
          std::span<const int64_t>(acc.values.data() + index * head_dim, static_cast<size_t>(head_dim)),
          acc.scales[t].m, acc.scales[t].k, out_bits, settings.mantissa_bits,
          std::span<uint8_t>(out.codes.data() + index * head_dim, static_cast<size_t>(head_dim)), clip);
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
}

}  // namespace illm
