// The halves of the online Walsh–Hadamard sites. See hadamard_sites.h.
#include "kernels/reference/hadamard_sites.h"

#include <algorithm>
#include <span>
#include <string>

#include "kernels/error.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/head_requant.h"
#include "kernels/requant.h"

namespace illm {
namespace {

constexpr int kWideBits = 16;  // the symmetric codes the transform sees (docs/integer-semantics.md)

void resize_wide(WideRows& out, int32_t rows, int32_t cols) {
  out.rows = rows;
  out.cols = cols;
  out.values.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  out.scales.resize(static_cast<size_t>(rows));
}

}  // namespace

void swiglu_symmetric_rows(const QuantizedActivation& gate, const QuantizedActivation& up,
                           const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out) {
  check_swiglu_shapes(gate, up);
  resize_wide(out, gate.rows, gate.cols);
  const size_t n = static_cast<size_t>(gate.cols);
  std::vector<uint8_t> g(n), u(n);
  std::vector<int64_t> products(n);
  for (int32_t t = 0; t < gate.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * n;
    for (size_t c = 0; c < n; ++c) {
      g[c] = static_cast<uint8_t>(gate.codes[offset + c]);
      u[c] = static_cast<uint8_t>(up.codes[offset + c]);
    }
    const Dyadic scale = di_swiglu_products(SwigluInput{g, gate.zero_points[t], gate.scales[t]},
                                            SwigluInput{u, up.zero_points[t], up.scales[t]}, inv_alpha, settings,
                                            std::span<int64_t>(products));
    const DiRequantResult r =
        di_requant_symmetric(std::span<const int64_t>(products), scale.m, scale.k, kWideBits,
                             settings.mantissa_bits, std::span<int32_t>(out.values.data() + offset, n));
    out.scales[t] = r.scale;
  }
}

void rope_symmetric_rows(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, std::span<const int32_t> positions,
                         const RopeTableView& rope, const IntegerSettings& settings, WideRows& out) {
  if (heads < 1 || head_dim < 1 || acc.cols != heads * head_dim)
    throw Error("hadamard_qk: accumulator of " + std::to_string(acc.cols) + " columns for " + std::to_string(heads) +
                " heads of " + std::to_string(head_dim));
  if (positions.size() != static_cast<size_t>(acc.rows))
    throw Error("hadamard_qk: " + std::to_string(positions.size()) + " positions for " + std::to_string(acc.rows) +
                " rows");
  resize_wide(out, acc.rows, acc.cols);
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

void requantize_wide_rows(const WideRows& x, int out_bits, int mantissa_bits, QuantizedActivation& out,
                          RequantClip clip) {
  resize_activation(out, x.rows, x.cols, out_bits);
  const size_t n = static_cast<size_t>(x.cols);
  std::vector<int64_t> row(n);
  for (int32_t t = 0; t < x.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * n;
    std::copy_n(x.values.begin() + static_cast<ptrdiff_t>(offset), n, row.begin());
    const DiRequantResult r = di_requant(std::span<const int64_t>(row), x.scales[t].m, x.scales[t].k, out_bits,
                                         mantissa_bits, std::span<uint16_t>(out.codes.data() + offset, n), clip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  }
}

void requantize_wide_heads(const WideRows& x, int32_t heads, int32_t head_dim, int out_bits, int mantissa_bits,
                           PerHeadActivation& out, RequantClip clip) {
  if (heads < 1 || head_dim < 1 || x.cols != heads * head_dim)
    throw Error("hadamard_qk: rows of " + std::to_string(x.cols) + " values for " + std::to_string(heads) +
                " heads of " + std::to_string(head_dim));
  resize_per_head(out, x.rows, heads, head_dim, out_bits);
  std::vector<int64_t> head(static_cast<size_t>(head_dim));
  for (int32_t t = 0; t < x.rows; ++t)
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      std::copy_n(x.values.begin() + static_cast<ptrdiff_t>(index * head_dim), head_dim, head.begin());
      const DiRequantResult r =
          di_requant(std::span<const int64_t>(head), x.scales[t].m, x.scales[t].k, out_bits, mantissa_bits,
                     std::span<uint8_t>(out.codes.data() + index * head_dim, static_cast<size_t>(head_dim)), clip);
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
}

}  // namespace illm
