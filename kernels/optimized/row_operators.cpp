#include "kernels/optimized/row_operators.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/optimized/parallel.h"
#include "kernels/optimized/requant_rows.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/head_requant.h"
#include "kernels/reference/residual.h"
#include "kernels/requant.h"

namespace illm::optimized {
namespace {

constexpr int kRopeInputBits = 16;

void check_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const char* op) {
  if (heads < 1 || head_dim < 1 || acc.cols != heads * head_dim)
    throw Error(std::string(op) + ": accumulator of " + std::to_string(acc.cols) + " columns for " +
                std::to_string(heads) + " heads of " + std::to_string(head_dim));
}

}  // namespace

void rms_norm(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings,
              int out_bits, QuantizedActivation& out) {
  resize_activation(out, h.rows, h.cols, out_bits);
  parallel_for(h.rows, int64_t{h.cols} * 16, [&](int64_t t) {
    di_norm_token(h, static_cast<int32_t>(t), gamma, eps, settings, out_bits, out);
  });
}

void requantize(const RowKernels& k, const AlignedAccumulator& acc, int out_bits, int mantissa_bits,
                QuantizedActivation& out) {
  resize_activation(out, acc.rows, acc.cols, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 8, [&](int64_t t) {
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult r = requant_row(k, acc.values.data() + offset, acc.cols, acc.scales[t].m, acc.scales[t].k,
                                          out_bits, mantissa_bits, out.codes.data() + offset);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  });
}

void rope_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                int32_t first_position, const RopeTableView& rope, const IntegerSettings& settings, int out_bits,
                PerHeadActivation& out) {
  check_heads(acc, heads, head_dim, "rope_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 16, [&](int64_t t) {
    thread_local std::vector<int32_t> rotated;
    thread_local std::vector<int64_t> wide;
    rotated.resize(acc.cols);
    wide.resize(acc.cols);
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult q16 = requant_row_symmetric(k, acc.values.data() + offset, acc.cols, acc.scales[t].m,
                                                      acc.scales[t].k, kRopeInputBits, settings.mantissa_bits,
                                                      rotated.data());
    rope_rotate_row(rotated, head_dim, first_position + static_cast<int32_t>(t), rope);
    std::copy(rotated.begin(), rotated.end(), wide.begin());
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      const DiRequantResult r =
          requant_row(k, wide.data() + static_cast<size_t>(h) * head_dim, head_dim, q16.scale.m, q16.scale.k,
                      out_bits, settings.mantissa_bits, out.codes.data() + index * head_dim);
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
  });
}

void split_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                 const IntegerSettings& settings, int out_bits, PerHeadActivation& out) {
  check_heads(acc, heads, head_dim, "split_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 8, [&](int64_t t) {
    for (int32_t h = 0; h < heads; ++h) {
      const size_t index = static_cast<size_t>(t) * heads + h;
      const DiRequantResult r =
          requant_row(k, acc.values.data() + index * head_dim, head_dim, acc.scales[t].m, acc.scales[t].k, out_bits,
                      settings.mantissa_bits, out.codes.data() + index * head_dim);
      out.zero_points[index] = static_cast<int32_t>(r.zero_point);
      out.scales[index] = r.scale;
    }
  });
}

void swiglu(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
            const IntegerSettings& settings, int out_bits, QuantizedActivation& out) {
  check_swiglu_shapes(gate, up);
  resize_activation(out, gate.rows, gate.cols, out_bits);
  parallel_for(gate.rows, int64_t{gate.cols} * 32, [&](int64_t t) {
    di_swiglu_token(gate, up, static_cast<int32_t>(t), inv_alpha, settings, out_bits, out);
  });
}

void residual_add(const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits, int out_bits,
                  ResidualStream& out) {
  if (delta.rows != h.rows || delta.cols != h.cols)
    throw Error("residual add: delta shape " + std::to_string(delta.rows) + "x" + std::to_string(delta.cols) +
                " differs from the residual " + std::to_string(h.rows) + "x" + std::to_string(h.cols));
  if (out_bits < 2 || out_bits > 16) throw Error("residual add: out_bits must be in [2, 16]");
  if (&out != &h) {
    out.codes.resize(h.codes.size());
    out.scales.resize(h.rows);
  }
  out.rows = h.rows;
  out.cols = h.cols;
  out.bits = out_bits;
  parallel_for(h.rows, int64_t{h.cols} * 16, [&](int64_t t) {
    const size_t offset = static_cast<size_t>(t) * h.cols;
    const DiRequantResult r = residual_add_row(
        std::span<const int16_t>(h.codes.data() + offset, h.cols), h.scales[t],
        std::span<const int64_t>(delta.values.data() + offset, delta.cols), delta.scales[t], mantissa_bits, out_bits,
        std::span<int16_t>(out.codes.data() + offset, h.cols));
    out.scales[t] = r.scale;
  });
}

}  // namespace illm::optimized
