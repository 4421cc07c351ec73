#include "kernels/reference/di_matmul.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"
#include "kernels/reference/dot_centered.h"
#include "kernels/integer_math.h"
#include "kernels/prepared_linear.h"
#include "kernels/requant.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

constexpr int kAlignedMantissaBits = 24;  // μ_j < 2^24 (§3.4)

void check_codes_in_range(const std::string& what, const char* operand, std::span<const int32_t> zero_points,
                          int bits, int32_t rows, int32_t cols, std::span<const uint16_t> codes) {
  if (bits < 1 || bits > 16)
    throw Error(what + ": " + operand + " has unsupported width " + std::to_string(bits) + " bits");
  const int64_t q = (int64_t{1} << bits) - 1;
  if (zero_points.size() != static_cast<size_t>(rows))
    throw Error(what + ": " + operand + " has " + std::to_string(zero_points.size()) + " zero points for " +
                std::to_string(rows) + " rows");
  for (int32_t r = 0; r < rows; ++r)
    if (zero_points[r] < 0 || zero_points[r] > q)
      throw Error(what + ": " + operand + " row " + std::to_string(r) + " zero point " +
                  std::to_string(zero_points[r]) + " outside [0, " + std::to_string(q) + "]");
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  if (codes.size() != count)
    throw Error(what + ": " + operand + " has " + std::to_string(codes.size()) + " codes, expected " +
                std::to_string(count));
  for (size_t i = 0; i < count; ++i)
    if (codes[i] > q)
      throw Error(what + ": " + operand + " code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                  " exceeds " + std::to_string(q));
}

// Checks of the first operand and of the shapes, shared by both forms of the second operand.
void check_input(const QuantizedActivation& x, int32_t n, int32_t k, int k_bits, int mantissa_bits,
                 const std::string& what) {
  if (x.cols != k)
    throw Error(what + ": inner sizes differ (input has " + std::to_string(x.cols) + " columns, operand " +
                std::to_string(k) + ")");
  if (x.rows < 0 || n < 0 || k < 0) throw Error(what + ": negative shape");
  if (mantissa_bits < 1 || mantissa_bits > kAlignedMantissaBits)
    throw Error(what + ": mantissa_bits " + std::to_string(mantissa_bits) + " outside [1, 24]");
  check_codes_in_range(what, "input", x.zero_points, x.bits, x.rows, x.cols, x.codes);
  if (x.scales.size() != static_cast<size_t>(x.rows)) throw Error(what + ": scale count does not match the row count");
  for (int32_t t = 0; t < x.rows; ++t)
    if (x.scales[t].m < 1 || x.scales[t].m >= (int64_t{1} << 31))
      throw Error(what + ": input row " + std::to_string(t) + " scale mantissa " + std::to_string(x.scales[t].m) +
                  " outside [1, 2^31)");
  // |P'| <= K · Q1 · Q2 · 2^24 must stay below 2^63 (P' is int64).
  const int64_t q1 = (int64_t{1} << x.bits) - 1, q2 = (int64_t{1} << k_bits) - 1;
  const unsigned __int128 worst = static_cast<unsigned __int128>(k) * q1 * q2 << kAlignedMantissaBits;
  if (worst >= (static_cast<unsigned __int128>(1) << 63))
    throw Error(what + ": reduction length " + std::to_string(k) + " at " + std::to_string(x.bits) + "x" +
                std::to_string(k_bits) + " bits can overflow the int64 aligned accumulator");
}


// P'_tj = P_tj · μ_j for every row t of x and every row j of the second operand; `operand_row(j)` returns a pointer
// to the k codes of row j (valid until the next call).
template <typename RowCodes>
void accumulate(const QuantizedActivation& x, int32_t n, int32_t k, int k_bits, std::span<const int32_t> zero_points,
                const ColumnAlignment& alignment, RowCodes&& operand_row, AlignedAccumulator& out) {
  const int64_t q1 = (int64_t{1} << x.bits) - 1, q2 = (int64_t{1} << k_bits) - 1;
  const bool use_int32 = accumulator_kind_for_bound(k, q1, q2) == AccumulatorKind::kInt32;
  out.rows = x.rows;
  out.cols = n;
  out.values.assign(static_cast<size_t>(x.rows) * static_cast<size_t>(n), 0);
  out.scales.resize(static_cast<size_t>(x.rows));
  for (int32_t j = 0; j < n; ++j) {
    const auto* w_row = operand_row(j);
    for (int32_t t = 0; t < x.rows; ++t) {
      const uint16_t* x_row = x.codes.data() + static_cast<size_t>(t) * x.cols;
      const int32_t z1 = x.zero_points[t];
      const int64_t p = dot_centered(use_int32, x_row, z1, w_row, zero_points[j], k);
      out.values[static_cast<size_t>(t) * n + j] = p * alignment.mantissas[j];
    }
  }
  for (int32_t t = 0; t < x.rows; ++t) out.scales[t] = Dyadic{x.scales[t].m, x.scales[t].k + alignment.exponent};
}

// A weight's rows one at a time, unpacked from the storage layout into one code per byte.
struct WeightRows {
  const QuantizedLinear& w;
  std::vector<uint8_t> row;
  const uint8_t* operator()(int32_t j) {
    unpack_weight_row(w, j, row);
    return row.data();
  }
};

// Per-group DI-MatMul (docs/integer-semantics.md "## Per-group DI-MatMul"): with G columns per group,
//   P_(t,j,g) = Σ_(k in g) (X_tk − z1_t)(W_jk − z_(j,g))   int32 when G·Q1·Q2 <= 2^31 − 1, else int64
//   P'_tj     = Σ_g P_(t,j,g) · μ_(j,g)                     int64, exact (|P'| <= in·Q1·Q2·2^24 < 2^63)
// `alignment` holds μ for every (row, group), row-major, and the common exponent K2.
void accumulate_grouped(const QuantizedActivation& x, const QuantizedLinear& w, const ColumnAlignment& alignment,
                        AlignedAccumulator& out) {
  const int32_t n = w.out_features, k = w.in_features, group = weight_group_size(w), groups = weight_groups(w);
  const int64_t q1 = (int64_t{1} << x.bits) - 1, q2 = (int64_t{1} << w.bits) - 1;
  const bool use_int32 = accumulator_kind_for_bound(group, q1, q2) == AccumulatorKind::kInt32;
  out.rows = x.rows;
  out.cols = n;
  out.values.assign(static_cast<size_t>(x.rows) * static_cast<size_t>(n), 0);
  out.scales.resize(static_cast<size_t>(x.rows));
  WeightRows rows{w, std::vector<uint8_t>(static_cast<size_t>(k))};
  for (int32_t j = 0; j < n; ++j) {
    const uint8_t* w_row = rows(j);
    const size_t first = static_cast<size_t>(j) * static_cast<size_t>(groups);
    for (int32_t t = 0; t < x.rows; ++t) {
      const uint16_t* x_row = x.codes.data() + static_cast<size_t>(t) * x.cols;
      const int32_t z1 = x.zero_points[t];
      int64_t sum = 0;
      for (int32_t g = 0; g < groups; ++g) {
        const size_t offset = static_cast<size_t>(g) * static_cast<size_t>(group);
        const int32_t z2 = w.zero_points[first + static_cast<size_t>(g)];
        const int64_t p = dot_centered(use_int32, x_row + offset, z1, w_row + offset, z2, group);
        sum += p * alignment.mantissas[first + static_cast<size_t>(g)];
      }
      out.values[static_cast<size_t>(t) * n + j] = sum;
    }
  }
  for (int32_t t = 0; t < x.rows; ++t) out.scales[t] = Dyadic{x.scales[t].m, x.scales[t].k + alignment.exponent};
}

}  // namespace

AccumulatorKind accumulator_kind_for_bound(int64_t reduction_length, int64_t max_abs1, int64_t max_abs2) {
  const unsigned __int128 bound = static_cast<unsigned __int128>(reduction_length < 0 ? 0 : reduction_length) *
                                  static_cast<unsigned __int128>(max_abs1 < 0 ? -max_abs1 : max_abs1) *
                                  static_cast<unsigned __int128>(max_abs2 < 0 ? -max_abs2 : max_abs2);
  return bound <= static_cast<unsigned __int128>(2147483647) ? AccumulatorKind::kInt32 : AccumulatorKind::kInt64;
}

AccumulatorKind accumulator_kind(int64_t reduction_length, int a_bits, int w_bits) {
  if (a_bits < 1 || a_bits > 16 || w_bits < 1 || w_bits > 16)
    throw Error("accumulator_kind: widths " + std::to_string(a_bits) + "x" + std::to_string(w_bits) +
                " outside [1, 16]");
  return accumulator_kind_for_bound(reduction_length, (int64_t{1} << a_bits) - 1, (int64_t{1} << w_bits) - 1);
}

ColumnAlignment align_columns(std::span<const Dyadic> column_scales, int mantissa_bits) {
  ColumnAlignment a;
  if (column_scales.empty()) return a;
  int32_t k_min = column_scales[0].k, k_max = column_scales[0].k;
  for (const Dyadic& d : column_scales) {
    k_min = std::min(k_min, d.k);
    k_max = std::max(k_max, d.k);
  }
  a.exponent = static_cast<int32_t>(std::min<int64_t>(k_max, int64_t{k_min} + kAlignedMantissaBits - mantissa_bits));
  a.mantissas.resize(column_scales.size());
  for (size_t j = 0; j < column_scales.size(); ++j) {
    const Dyadic& d = column_scales[j];
    if (d.m < 0 || d.m >= (int64_t{1} << kAlignedMantissaBits))
      throw Error("DI-MatMul column alignment: column " + std::to_string(j) + " mantissa " + std::to_string(d.m) +
                  " outside [0, 2^24)");
    const int64_t shift = int64_t{a.exponent} - d.k;  // <= 24 − b_m by construction of K2
    const int64_t mu = shift >= 0 ? shl(d.m, static_cast<int>(shift))
                                  : rshr(d.m, static_cast<int>(std::min<int64_t>(-shift, 64)));
    if (mu >= (int64_t{1} << kAlignedMantissaBits))
      throw Error("DI-MatMul column alignment: column " + std::to_string(j) + " mantissa " + std::to_string(d.m) +
                  " has more than " + std::to_string(mantissa_bits) + " bits; aligned value reaches 2^24");
    a.mantissas[j] = mu;
  }
  return a;
}

AlignedAccumulator di_matmul_accumulate(const QuantizedActivation& x, const QuantizedLinear& w, int mantissa_bits,
                                        const char* what) {
  if (const auto problem = weight_codes_problem(w)) throw Error(std::string(what) + ": weight " + *problem);
  if (w.group_size != 0 && (w.group_size < 1 || w.in_features % w.group_size != 0))
    throw Error(std::string(what) + ": weight group_size " + std::to_string(w.group_size) +
                " does not divide in_features " + std::to_string(w.in_features));
  const size_t scale_count = static_cast<size_t>(w.out_features) * static_cast<size_t>(weight_groups(w));
  if (w.zero_points.size() != scale_count || w.scales.size() != scale_count)
    throw Error(std::string(what) + ": weight has " + std::to_string(w.zero_points.size()) + " zero points and " +
                std::to_string(w.scales.size()) + " scales for " + std::to_string(scale_count) + " (row, group)s");
  const int64_t q = (int64_t{1} << w.bits) - 1;
  for (size_t j = 0; j < scale_count; ++j)
    if (w.zero_points[j] < 0 || w.zero_points[j] > q)
      throw Error(std::string(what) + ": operand (row, group) " + std::to_string(j) + " zero point " +
                  std::to_string(w.zero_points[j]) + " outside [0, " + std::to_string(q) + "]");
  check_input(x, w.out_features, w.in_features, w.bits, mantissa_bits, what);
  AlignedAccumulator out;
  if (w.group_size > 0) {
    accumulate_grouped(x, w, align_columns(w.scales, mantissa_bits), out);
    return out;
  }
  accumulate(x, w.out_features, w.in_features, w.bits, w.zero_points, align_columns(w.scales, mantissa_bits),
             WeightRows{w, std::vector<uint8_t>(static_cast<size_t>(w.in_features))}, out);
  return out;
}

AlignedAccumulator di_matmul_accumulate(const QuantizedActivation& x, const QuantizedActivation& x2_transposed,
                                        int mantissa_bits, const char* what) {
  const QuantizedActivation& w = x2_transposed;
  check_codes_in_range(what, "operand", w.zero_points, w.bits, w.rows, w.cols, w.codes);
  if (w.scales.size() != static_cast<size_t>(w.rows)) throw Error(std::string(what) + ": scale count does not match the row count");
  check_input(x, w.rows, w.cols, w.bits, mantissa_bits, what);
  AlignedAccumulator out;
  accumulate(x, w.rows, w.cols, w.bits, w.zero_points, align_columns(w.scales, mantissa_bits),
             [&](int32_t j) { return w.codes.data() + static_cast<size_t>(j) * w.cols; }, out);
  return out;
}

void linear_accumulate(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out) {
  const QuantizedLinear& weight = *w.weight;
  if (weight.group_size > 0) {
    accumulate_grouped(x, weight, w.alignment, out);
    return;
  }
  accumulate(x, weight.out_features, weight.in_features, weight.bits, weight.zero_points, w.alignment,
             WeightRows{weight, std::vector<uint8_t>(static_cast<size_t>(weight.in_features))}, out);
}

void requantize_rows(const AlignedAccumulator& acc, int out_bits, int mantissa_bits, QuantizedActivation& y,
                     RequantClip clip) {
  resize_activation(y, acc.rows, acc.cols, out_bits);
  for (int32_t t = 0; t < acc.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult r =
        di_requant(std::span<const int64_t>(acc.values.data() + offset, acc.cols), acc.scales[t].m, acc.scales[t].k,
                   out_bits, mantissa_bits, std::span<uint16_t>(y.codes.data() + offset, acc.cols), clip);
    y.zero_points[t] = static_cast<int32_t>(r.zero_point);
    y.scales[t] = r.scale;
  }
}

QuantizedActivation requantize_rows(const AlignedAccumulator& acc, int out_bits, int mantissa_bits) {
  QuantizedActivation y;
  requantize_rows(acc, out_bits, mantissa_bits, y);
  return y;
}

QuantizedActivation di_matmul(const QuantizedActivation& x, const QuantizedLinear& w, int out_bits, int mantissa_bits,
                              const char* what) {
  return requantize_rows(di_matmul_accumulate(x, w, mantissa_bits, what), out_bits, mantissa_bits);
}

QuantizedActivation di_matmul(const QuantizedActivation& x, const QuantizedActivation& x2_transposed, int out_bits,
                              int mantissa_bits, const char* what) {
  return requantize_rows(di_matmul_accumulate(x, x2_transposed, mantissa_bits, what), out_bits, mantissa_bits);
}

}  // namespace illm
