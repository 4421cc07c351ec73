// The reference halves of the online Walsh–Hadamard sites. See hadamard_sites.h.
#include "kernels/reference/hadamard_sites.h"

#include <algorithm>
#include <span>
#include <string>

#include "kernels/error.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/requant.h"

namespace illm {
namespace {

constexpr int kWideBits = 16;  // the symmetric codes the transform sees (docs/integer-semantics.md)

}  // namespace

void resize_wide_rows(WideRows& out, int32_t rows, int32_t cols) {
  out.rows = rows;
  out.cols = cols;
  out.values.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  out.scales.resize(static_cast<size_t>(rows));
}

void check_rope_symmetric_shapes(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                                 std::span<const int32_t> positions) {
  if (heads < 1 || head_dim < 1 || acc.cols != heads * head_dim)
    throw Error("hadamard_qk: accumulator of " + std::to_string(acc.cols) + " columns for " + std::to_string(heads) +
                " heads of " + std::to_string(head_dim));
  if (positions.size() != static_cast<size_t>(acc.rows))
    throw Error("hadamard_qk: " + std::to_string(positions.size()) + " positions for " + std::to_string(acc.rows) +
                " rows");
}

void swiglu_symmetric_rows(const QuantizedActivation& gate, const QuantizedActivation& up,
                           const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out) {
  check_swiglu_shapes(gate, up);
  resize_wide_rows(out, gate.rows, gate.cols);
  const size_t n = static_cast<size_t>(gate.cols);
  std::vector<uint8_t> g, u;
  std::vector<int64_t> products(n);
  for (int32_t t = 0; t < gate.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * n;
    const Dyadic scale = di_swiglu_products(swiglu_input_row(gate, t, g), swiglu_input_row(up, t, u), inv_alpha,
                                            settings, std::span<int64_t>(products));
    const DiRequantResult r =
        di_requant_symmetric(std::span<const int64_t>(products), scale.m, scale.k, kWideBits,
                             settings.mantissa_bits, std::span<int32_t>(out.values.data() + offset, n));
    out.scales[t] = r.scale;
  }
}

void rope_symmetric_rows(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                         std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                         WideRows& out) {
  check_rope_symmetric_shapes(acc, heads, head_dim, positions);
  resize_wide_rows(out, acc.rows, acc.cols);
  const size_t n = static_cast<size_t>(acc.cols);
  for (int32_t t = 0; t < acc.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * n;
    std::span<int32_t> row(out.values.data() + offset, n);
    const DiRequantResult q16 =
        di_requant_symmetric(std::span<const int64_t>(acc.values.data() + offset, n), acc.scales[t].m,
                             acc.scales[t].k, kWideBits, settings.mantissa_bits, row);
    rope_rotate_row(row, head_dim, positions[static_cast<size_t>(t)], rope);
    out.scales[t] = q16.scale;
  }
}

void widen_rows(const WideRows& x, AlignedAccumulator& out) {
  out.rows = x.rows;
  out.cols = x.cols;
  out.values.assign(x.values.begin(), x.values.end());
  out.scales.assign(x.scales.begin(), x.scales.end());
}

}  // namespace illm
