#include "kernels/optimized/di_matmul_fast.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/requant.h"

namespace illm {
namespace {

constexpr int kAlignedMantissaBits = 24;

// Σ_k a_k·b_k on uint8 codes; the caller guarantees n·max(a)·max(b) <= 2^31 − 1. Written so that the compiler
// vectorizes it (widening multiply-add).
int32_t dot_u8(const uint8_t* a, const uint8_t* b, int32_t n) {
  int32_t sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += static_cast<int32_t>(a[i]) * static_cast<int32_t>(b[i]);
  return sum;
}

int64_t dot_centered_i64(const uint16_t* x, int64_t z1, const uint8_t* w, int64_t z2, int32_t n) {
  int64_t sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += (static_cast<int64_t>(x[i]) - z1) * (static_cast<int64_t>(w[i]) - z2);
  return sum;
}

void check_input(const QuantizedActivation& x, const QuantizedLinear& w, const std::string& what) {
  if (x.cols != w.in_features)
    throw Error(what + ": inner sizes differ (input has " + std::to_string(x.cols) + " columns, operand " +
                std::to_string(w.in_features) + ")");
  if (x.rows < 0) throw Error(what + ": negative shape");
  if (x.bits < 1 || x.bits > 16) throw Error(what + ": input has unsupported width " + std::to_string(x.bits) + " bits");
  const int64_t q = (int64_t{1} << x.bits) - 1;
  if (x.zero_points.size() != static_cast<size_t>(x.rows))
    throw Error(what + ": input has " + std::to_string(x.zero_points.size()) + " zero points for " +
                std::to_string(x.rows) + " rows");
  for (int32_t r = 0; r < x.rows; ++r)
    if (x.zero_points[r] < 0 || x.zero_points[r] > q)
      throw Error(what + ": input row " + std::to_string(r) + " zero point " + std::to_string(x.zero_points[r]) +
                  " outside [0, " + std::to_string(q) + "]");
  const size_t count = static_cast<size_t>(x.rows) * static_cast<size_t>(x.cols);
  if (x.codes.size() != count)
    throw Error(what + ": input has " + std::to_string(x.codes.size()) + " codes, expected " + std::to_string(count));
  for (size_t i = 0; i < count; ++i)
    if (x.codes[i] > q)
      throw Error(what + ": input code " + std::to_string(x.codes[i]) + " at index " + std::to_string(i) +
                  " exceeds " + std::to_string(q));
  if (x.scales.size() != static_cast<size_t>(x.rows)) throw Error(what + ": scale count does not match the row count");
  for (int32_t t = 0; t < x.rows; ++t)
    if (x.scales[t].m < 1 || x.scales[t].m >= (int64_t{1} << 31))
      throw Error(what + ": input row " + std::to_string(t) + " scale mantissa " + std::to_string(x.scales[t].m) +
                  " outside [1, 2^31)");
  const int64_t q2 = (int64_t{1} << w.bits) - 1;
  const unsigned __int128 worst = static_cast<unsigned __int128>(w.in_features) * q * q2 << kAlignedMantissaBits;
  if (worst >= (static_cast<unsigned __int128>(1) << 63))
    throw Error(what + ": reduction length " + std::to_string(w.in_features) + " at " + std::to_string(x.bits) + "x" +
                std::to_string(w.bits) + " bits can overflow the int64 aligned accumulator");
}

int64_t g_parallel_work_threshold = int64_t{1} << 16;

}  // namespace

void set_parallel_work_threshold(int64_t work) { g_parallel_work_threshold = work < 0 ? 0 : work; }
int64_t parallel_work_threshold() { return g_parallel_work_threshold; }

PreparedLinear prepare_linear(const QuantizedLinear& w, int mantissa_bits, const char* what_c) {
  const std::string what(what_c);
  if (w.out_features < 0 || w.in_features < 0) throw Error(what + ": negative shape");
  if (w.bits < 1 || w.bits > 8)
    throw Error(what + ": operand has unsupported width " + std::to_string(w.bits) + " bits (weights: 1..8)");
  if (mantissa_bits < 1 || mantissa_bits > kAlignedMantissaBits)
    throw Error(what + ": mantissa_bits " + std::to_string(mantissa_bits) + " outside [1, 24]");
  const size_t count = static_cast<size_t>(w.out_features) * static_cast<size_t>(w.in_features);
  if (w.codes.size() != count)
    throw Error(what + ": weight has " + std::to_string(w.codes.size()) + " codes for shape " +
                std::to_string(w.out_features) + "x" + std::to_string(w.in_features));
  if (w.zero_points.size() != static_cast<size_t>(w.out_features) ||
      w.scales.size() != static_cast<size_t>(w.out_features))
    throw Error(what + ": weight has " + std::to_string(w.zero_points.size()) + " zero points and " +
                std::to_string(w.scales.size()) + " scales for " + std::to_string(w.out_features) + " rows");
  const int64_t q = (int64_t{1} << w.bits) - 1;
  PreparedLinear p;
  p.weight = &w;
  p.mantissa_bits = mantissa_bits;
  p.code_sums.assign(w.out_features, 0);
  for (int32_t j = 0; j < w.out_features; ++j) {
    if (w.zero_points[j] < 0 || w.zero_points[j] > q)
      throw Error(what + ": operand row " + std::to_string(j) + " zero point " + std::to_string(w.zero_points[j]) +
                  " outside [0, " + std::to_string(q) + "]");
    const uint8_t* row = w.codes.data() + static_cast<size_t>(j) * w.in_features;
    int64_t sum = 0;
    for (int32_t k = 0; k < w.in_features; ++k) {
      if (row[k] > q)
        throw Error(what + ": operand code " + std::to_string(row[k]) + " at index " +
                    std::to_string(static_cast<size_t>(j) * w.in_features + k) + " exceeds " + std::to_string(q));
      sum += row[k];
    }
    p.code_sums[j] = sum;
  }
  p.alignment = align_columns(w.scales, mantissa_bits);
  return p;
}

AlignedAccumulator di_matmul_accumulate_fast(const QuantizedActivation& x, const PreparedLinear& prepared,
                                             const char* what_c) {
  if (prepared.weight == nullptr) throw Error(std::string(what_c) + ": weight was not prepared");
  const QuantizedLinear& w = *prepared.weight;
  check_input(x, w, what_c);
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features;
  AlignedAccumulator out;
  out.rows = rows;
  out.cols = n;
  out.values.resize(static_cast<size_t>(rows) * n);
  out.scales.resize(rows);
  for (int32_t t = 0; t < rows; ++t)
    out.scales[t] = Dyadic{x.scales[t].m, x.scales[t].k + prepared.alignment.exponent};
  const int64_t work = int64_t{rows} * n * k;
  const int64_t q1 = (int64_t{1} << x.bits) - 1, q2 = (int64_t{1} << w.bits) - 1;
  const bool int32_path = x.bits <= 8 && accumulator_kind_for_bound(k, q1, q2) == AccumulatorKind::kInt32;
  const std::vector<int64_t>& mu = prepared.alignment.mantissas;

  if (!int32_path) {
#pragma omp parallel for schedule(static) if (work > g_parallel_work_threshold)
    for (int32_t j = 0; j < n; ++j) {
      const uint8_t* w_row = w.codes.data() + static_cast<size_t>(j) * k;
      for (int32_t t = 0; t < rows; ++t)
        out.values[static_cast<size_t>(t) * n + j] =
            dot_centered_i64(x.codes.data() + static_cast<size_t>(t) * k, x.zero_points[t], w_row, w.zero_points[j],
                             k) * mu[j];
    }
    return out;
  }

  // Narrow the input codes to bytes and take the row sums RS_t once.
  std::vector<uint8_t> x8(x.codes.size());
  std::vector<int64_t> row_sums(rows, 0);
  for (int32_t t = 0; t < rows; ++t) {
    int64_t sum = 0;
    for (int32_t c = 0; c < k; ++c) {
      const size_t i = static_cast<size_t>(t) * k + c;
      x8[i] = static_cast<uint8_t>(x.codes[i]);
      sum += x.codes[i];
    }
    row_sums[t] = sum;
  }
  const int64_t kk = k;
#pragma omp parallel for schedule(static) if (work > g_parallel_work_threshold)
  for (int32_t j = 0; j < n; ++j) {
    const uint8_t* w_row = w.codes.data() + static_cast<size_t>(j) * k;
    const int64_t z2 = w.zero_points[j], cs = prepared.code_sums[j];
    for (int32_t t = 0; t < rows; ++t) {
      const int64_t z1 = x.zero_points[t];
      const int64_t raw = dot_u8(x8.data() + static_cast<size_t>(t) * k, w_row, k);
      const int64_t p = raw - z2 * row_sums[t] - z1 * cs + kk * z1 * z2;  // exact: = Σ (x − z1)(w − z2)
      out.values[static_cast<size_t>(t) * n + j] = p * mu[j];
    }
  }
  return out;
}

AlignedAccumulator di_matmul_accumulate_fast(const QuantizedActivation& x, const QuantizedLinear& w, int mantissa_bits,
                                             const char* what) {
  const PreparedLinear prepared = prepare_linear(w, mantissa_bits, what);
  return di_matmul_accumulate_fast(x, prepared, what);
}

QuantizedActivation requantize_rows_fast(const AlignedAccumulator& acc, int out_bits, int mantissa_bits) {
  QuantizedActivation y;
  y.rows = acc.rows;
  y.cols = acc.cols;
  y.bits = out_bits;
  y.codes.resize(static_cast<size_t>(acc.rows) * static_cast<size_t>(acc.cols));
  y.zero_points.resize(acc.rows);
  y.scales.resize(acc.rows);
  if (acc.rows == 0) return y;
  // Argument errors are the same for every row: check them on row 0 outside the parallel region.
  const auto row = [&](int32_t t) {
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult r =
        di_requant(std::span<const int64_t>(acc.values.data() + offset, acc.cols), acc.scales[t].m, acc.scales[t].k,
                   out_bits, mantissa_bits, std::span<uint16_t>(y.codes.data() + offset, acc.cols));
    y.zero_points[t] = static_cast<int32_t>(r.zero_point);
    y.scales[t] = r.scale;
  };
  for (int32_t t = 0; t < acc.rows; ++t)
    if (acc.scales[t].m < 1 || acc.scales[t].m >= (int64_t{1} << 31))
      throw Error("DI_REQUANT: input mantissa " + std::to_string(acc.scales[t].m) + " outside [1, 2^31) in row " +
                  std::to_string(t));
  row(0);
#pragma omp parallel for schedule(static) if (int64_t{acc.rows} * acc.cols > g_parallel_work_threshold)
  for (int32_t t = 1; t < acc.rows; ++t) row(t);
  return y;
}

QuantizedActivation di_matmul_fast(const QuantizedActivation& x, const PreparedLinear& w, int out_bits,
                                   const char* what) {
  return requantize_rows_fast(di_matmul_accumulate_fast(x, w, what), out_bits, w.mantissa_bits);
}

QuantizedActivation di_matmul_fast(const QuantizedActivation& x, const QuantizedLinear& w, int out_bits,
                                   int mantissa_bits, const char* what) {
  return requantize_rows_fast(di_matmul_accumulate_fast(x, w, mantissa_bits, what), out_bits, mantissa_bits);
}

}  // namespace illm
