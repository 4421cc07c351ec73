#include "kernels/reference/residual.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/requant.h"

namespace illm {
namespace {

constexpr int kTermBits = 61;  // |a|, |b| < 2^61 so that a + b < 2^62 (§7.2)

// Number of bits of a non-negative magnitude (0 for 0).
int bit_length(unsigned __int128 x) { return x == 0 ? 0 : msb128(x) + 1; }

}  // namespace

ResidualAddPlan plan_residual_add(int64_t h_max, Dyadic s_h, uint64_t d_max, Dyadic s_d) {
  if (s_h.m < 1 || s_h.m >= (int64_t{1} << 31) || s_d.m < 0 || s_d.m >= (int64_t{1} << 31))
    throw Error("residual add: scale mantissa outside [1, 2^31)");
  // Bring the delta below 2^40 and |d'·m_d| below 2^57 (the §7.2 rule, generalized to wider mantissas).
  ResidualAddPlan plan;
  if (d_max > 0) {
    const int by_value = msb(d_max) - 39;
    const int by_product = s_d.m > 0 ? msb(d_max) + msb(static_cast<uint64_t>(s_d.m)) - 55 : 0;
    plan.delta_shift = std::max({0, by_value, by_product});
  }
  const int64_t k_d = int64_t{s_d.k} - plan.delta_shift;
  // Common exponent: the finer of the two, capped so that no left shift leaves kTermBits.
  const int headroom_h = kTermBits - bit_length(static_cast<unsigned __int128>(h_max) * s_h.m);
  const int headroom_d =
      kTermBits - bit_length(static_cast<unsigned __int128>(rshr(static_cast<int64_t>(d_max), plan.delta_shift) + 1) * s_d.m);
  const int64_t k_common = std::min({std::max<int64_t>(s_h.k, k_d), int64_t{s_h.k} + headroom_h, k_d + headroom_d});
  const auto clamp_shift = [](int64_t s) { return static_cast<int>(std::clamp<int64_t>(s, -62, 64)); };
  plan.residual_shift = clamp_shift(int64_t{s_h.k} - k_common);  // rshr amount (negative = left shift)
  plan.delta_term_shift = clamp_shift(k_d - k_common);
  if (k_common < INT32_MIN || k_common > INT32_MAX) throw Error("residual add: exponent out of range");
  plan.exponent = static_cast<int32_t>(k_common);
  return plan;
}

namespace {

// One row: h (residual codes, scale s_h) + (d − z_d) (scale s_d) → DI_REQUANT_SYM codes.
DiRequantResult add_row(std::span<const int16_t> h, Dyadic s_h, std::span<const int64_t> d, int64_t z_d, Dyadic s_d,
                        int mantissa_bits, int out_bits, std::span<int16_t> out, std::vector<int64_t>& sum) {
  const size_t n = h.size();
  uint64_t d_max = 0;
  for (size_t c = 0; c < n; ++c) {
    if (d[c] > (int64_t{1} << 62) || d[c] < -(int64_t{1} << 62))
      throw Error("residual add: delta value " + std::to_string(d[c]) + " at column " + std::to_string(c) +
                  " outside ±2^62");
    const int64_t centered = d[c] - z_d;
    d_max = std::max<uint64_t>(d_max, static_cast<uint64_t>(centered < 0 ? -centered : centered));
  }
  int64_t h_max = 0;
  for (const int16_t x : h) h_max = std::max<int64_t>(h_max, x < 0 ? -int64_t{x} : int64_t{x});
  const ResidualAddPlan plan = plan_residual_add(h_max, s_h, d_max, s_d);
  for (size_t c = 0; c < n; ++c) {
    const int64_t a = rshr(int64_t{h[c]} * s_h.m, plan.residual_shift);
    const int64_t b = rshr(rshr(d[c] - z_d, plan.delta_shift) * s_d.m, plan.delta_term_shift);
    sum[c] = a + b;
  }
  return di_requant_symmetric(std::span<const int64_t>(sum.data(), n), 1, plan.exponent, out_bits, mantissa_bits,
                              out);
}

// Row t of `out` is written after row t of `residual` was read, so out may be the residual itself.
void add_all(const ResidualStream& residual, int32_t rows, int32_t cols, auto row_values, auto row_zero,
             auto row_scale, int mantissa_bits, int out_bits, ResidualStream& out) {
  if (rows != residual.rows || cols != residual.cols)
    throw Error("residual add: delta shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                " differs from the residual " + std::to_string(residual.rows) + "x" + std::to_string(residual.cols));
  if (residual.codes.size() != static_cast<size_t>(rows) * cols || residual.scales.size() != static_cast<size_t>(rows))
    throw Error("residual add: residual stream has inconsistent sizes");
  if (out_bits < 2 || out_bits > 16) throw Error("residual add: out_bits must be in [2, 16]");
  out.rows = rows;
  out.cols = cols;
  out.bits = out_bits;
  out.codes.resize(residual.codes.size());
  out.scales.resize(rows);
  std::vector<int64_t> values(cols), sum(cols);
  for (int32_t t = 0; t < rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * cols;
    row_values(t, values);
    const DiRequantResult r = add_row(std::span<const int16_t>(residual.codes.data() + offset, cols),
                                      residual.scales[t], values, row_zero(t), row_scale(t), mantissa_bits, out_bits,
                                      std::span<int16_t>(out.codes.data() + offset, cols), sum);
    out.scales[t] = r.scale;
  }
}

}  // namespace

void residual_add(const ResidualStream& residual, const AlignedAccumulator& delta, int mantissa_bits, int out_bits,
                  ResidualStream& out) {
  if (delta.values.size() != static_cast<size_t>(delta.rows) * delta.cols ||
      delta.scales.size() != static_cast<size_t>(delta.rows))
    throw Error("residual add: delta accumulator has inconsistent sizes");
  add_all(
      residual, delta.rows, delta.cols,
      [&](int32_t t, std::vector<int64_t>& v) {
        std::copy_n(delta.values.begin() + static_cast<ptrdiff_t>(t) * delta.cols, delta.cols, v.begin());
      },
      [](int32_t) { return int64_t{0}; }, [&](int32_t t) { return delta.scales[t]; }, mantissa_bits, out_bits, out);
}

DiRequantResult residual_add_row(std::span<const int16_t> h, Dyadic s_h, std::span<const int64_t> delta, Dyadic s_d,
                                 int mantissa_bits, int out_bits, std::span<int16_t> out) {
  if (delta.size() != h.size() || out.size() != h.size())
    throw Error("residual add: row lengths differ (" + std::to_string(h.size()) + ", " + std::to_string(delta.size()) +
                ", " + std::to_string(out.size()) + ")");
  std::vector<int64_t> sum(h.size());
  return add_row(h, s_h, delta, 0, s_d, mantissa_bits, out_bits, out, sum);
}

ResidualStream residual_add(const ResidualStream& residual, const AlignedAccumulator& delta, int mantissa_bits,
                            int out_bits) {
  ResidualStream out;
  residual_add(residual, delta, mantissa_bits, out_bits, out);
  return out;
}

ResidualStream residual_add(const ResidualStream& residual, const QuantizedActivation& delta, int mantissa_bits,
                            int out_bits) {
  if (delta.codes.size() != static_cast<size_t>(delta.rows) * delta.cols ||
      delta.scales.size() != static_cast<size_t>(delta.rows) ||
      delta.zero_points.size() != static_cast<size_t>(delta.rows))
    throw Error("residual add: delta codes have inconsistent sizes");
  ResidualStream out;
  add_all(
      residual, delta.rows, delta.cols,
      [&](int32_t t, std::vector<int64_t>& v) {
        for (int32_t c = 0; c < delta.cols; ++c) v[c] = delta.at(t, c);
      },
      [&](int32_t t) { return int64_t{delta.zero_points[t]}; }, [&](int32_t t) { return delta.scales[t]; },
      mantissa_bits, out_bits, out);
  return out;
}

}  // namespace illm
