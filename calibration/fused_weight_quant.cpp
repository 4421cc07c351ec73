// Fused fold + LWC fake-quantization of one linear (see fused_weight_quant.h). Compiled with -ffp-contract=off
// (CMakeLists.txt): every float operation must round exactly as the unfused torch ops do.
#include "calibration/fused_weight_quant.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

#include "kernels/error.h"

namespace illm::calib {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// round half away from zero as quantizers.cpp computes it in float32: sign(x)·floor(|x| + 0.5). floor of a
// non-negative float: truncation below 2^23, the value itself above (already an integer). Branch-free, so the
// loops below vectorize.
inline float round_half_away(float x) {
  const float v = std::fabs(x) + 0.5f;
  const float f = v < 8388608.0f ? static_cast<float>(static_cast<int32_t>(v)) : v;  // NaN stays NaN
  return x > 0 ? f : (x < 0 ? -f : 0.0f * f);
}

// The raw pointers and sizes of one call.
struct Problem {
  const float* w = nullptr;
  const float* col = nullptr;  // [in] or null
  const float* row = nullptr;  // [out] or null (RowFactor::kNone)
  RowFactor mode = RowFactor::kNone;
  const float* hf = nullptr;  // [out][groups] or null
  const float* lf = nullptr;
  int64_t out = 0, in = 0, group = 0, groups = 0;
  float q = 0;  // 2^bits − 1

  float row_value(int64_t i) const { return mode == RowFactor::kNone ? 1.0f : row[i]; }
};

// What the forward leaves for the backward, per (row, group): float32 [max, min, scale, zero] and int32
// [max count, min count] rows of two small tensors (they travel in the autograd context).
struct GroupStats {
  torch::Tensor values, counts;
  float *max, *min, *scale, *zero;
  int32_t *max_count, *min_count;
  explicit GroupStats(int64_t n)
      : GroupStats(torch::empty({4, n}, torch::kFloat32), torch::empty({2, n}, torch::kInt32)) {}
  GroupStats(torch::Tensor v, torch::Tensor c) : values(std::move(v)), counts(std::move(c)) {
    const int64_t n = values.size(1);
    max = values.data_ptr<float>();
    min = max + n;
    scale = min + n;
    zero = scale + n;
    max_count = counts.data_ptr<int32_t>();
    min_count = max_count + n;
  }
};

int threads_for(int64_t rows) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(rows, at::get_num_threads()))); }

// The per-row work, in simple loops over a row buffer (the folded row W'[i][·]) that the compiler vectorizes; one
// clone per instruction set, chosen at run time. Every float operation is the unfused path's, in its order.
#define ILLM_ROW_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

constexpr int kLanes = 16;  // independent accumulators: max/min/sums vectorize without reassociation

// buf[j] = (W[i][j] · col[j]) {·, /} row[i]
ILLM_ROW_KERNEL void fold_row(const Problem& p, int64_t i, float* buf) {
  const float* w = p.w + i * p.in;
  const float r = p.row_value(i);
  if (p.col) {
    for (int64_t j = 0; j < p.in; ++j) buf[j] = w[j] * p.col[j];
  } else {
    for (int64_t j = 0; j < p.in; ++j) buf[j] = w[j];
  }
  if (p.mode == RowFactor::kMultiply) {
    for (int64_t j = 0; j < p.in; ++j) buf[j] = buf[j] * r;
  } else if (p.mode == RowFactor::kDivide) {
    for (int64_t j = 0; j < p.in; ++j) buf[j] = buf[j] / r;
  }
}

// Max and min of v[0, n) and how often each occurs.
ILLM_ROW_KERNEL void extremes(const float* v, int64_t n, float* max_out, float* min_out, int32_t* max_count,
                              int32_t* min_count) {
  float mx[kLanes], mn[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    mx[l] = -std::numeric_limits<float>::infinity();
    mn[l] = std::numeric_limits<float>::infinity();
  }
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      mx[l] = v[j + l] > mx[l] ? v[j + l] : mx[l];
      mn[l] = v[j + l] < mn[l] ? v[j + l] : mn[l];
    }
  for (; j < n; ++j) {
    mx[0] = v[j] > mx[0] ? v[j] : mx[0];
    mn[0] = v[j] < mn[0] ? v[j] : mn[0];
  }
  float a = mx[0], b = mn[0];
  for (int l = 1; l < kLanes; ++l) {
    a = mx[l] > a ? mx[l] : a;
    b = mn[l] < b ? mn[l] : b;
  }
  int32_t ca = 0, cb = 0;
  for (int64_t k = 0; k < n; ++k) {
    ca += v[k] == a;
    cb += v[k] == b;
  }
  *max_out = a;
  *min_out = b;
  *max_count = ca;
  *min_count = cb;
}

// Ŵ (and the codes) of one group: the quantizer of quantize_weight with scale s and zero point z.
ILLM_ROW_KERNEL void quantize_group(const float* v, int64_t n, float s, float z, float q, float* deq, uint8_t* codes) {
  for (int64_t j = 0; j < n; ++j) {
    const float x = v[j] / s;
    const float rounded = x + (round_half_away(x) - x);  // round_ste's forward value
    const float c = std::min(std::max(rounded + z, 0.0f), q);
    deq[j] = (c - z) * s;
  }
  if (codes)
    for (int64_t j = 0; j < n; ++j) {
      const float x = v[j] / s;
      const float rounded = x + (round_half_away(x) - x);
      codes[j] = static_cast<uint8_t>(std::min(std::max(rounded + z, 0.0f), q));
    }
}

// The group's scale and zero point from its extremes (and the LWC factors).
void group_scale(const Problem& p, int64_t g, float mx, float mn, float* s_out, float* z_out) {
  float hi = p.hf ? p.hf[g] * mx : mx;
  float lo = p.lf ? p.lf[g] * mn : mn;
  hi = hi < 0.0f ? 0.0f : hi;  // clamp_min(0)
  lo = lo > 0.0f ? 0.0f : lo;  // clamp_max(0)
  float s = (hi - lo) / p.q;
  s = s < static_cast<float>(kMinScale) ? static_cast<float>(kMinScale) : s;
  float z = round_half_away(-lo / s);
  *s_out = s;
  *z_out = std::min(std::max(z, 0.0f), p.q);
}

void forward_rows(const Problem& p, float* deq, uint8_t* codes, GroupStats& st) {
#pragma omp parallel num_threads(threads_for(p.out))
  {
    std::vector<float> buf(static_cast<size_t>(p.in));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.out; ++i) {
      fold_row(p, i, buf.data());
      for (int64_t k = 0; k < p.groups; ++k) {
        const int64_t g = i * p.groups + k, j0 = k * p.group;
        extremes(buf.data() + j0, p.group, &st.max[g], &st.min[g], &st.max_count[g], &st.min_count[g]);
        group_scale(p, g, st.max[g], st.min[g], &st.scale[g], &st.zero[g]);
        quantize_group(buf.data() + j0, p.group, st.scale[g], st.zero[g], p.q, deq + i * p.in + j0,
                       codes ? codes + i * p.in + j0 : nullptr);
      }
    }
  }
}

// Backward of one group's quantizer: d_folded[j] = dL/dW' through x = W'/s (clamp mask, STE); returns dL/ds.
ILLM_ROW_KERNEL double quantizer_backward(const float* v, const float* grad, int64_t n, float s, float z, float q,
                                          float* d_folded) {
  double gt[kLanes] = {}, dxw[kLanes] = {};
  auto element = [&](int64_t j, int l) {
    const float x = v[j] / s;
    const float pre = x + (round_half_away(x) - x) + z;
    const float c = std::min(std::max(pre, 0.0f), q);
    const float gj = grad[j];
    gt[l] += static_cast<double>(gj) * static_cast<double>(c - z);  // Ŵ = t·s: dL/ds += G·t
    const float dx = (pre >= 0.0f && pre <= q) ? gj * s : 0.0f;   // through the clamp, the STE and t·s
    dxw[l] += static_cast<double>(dx) * static_cast<double>(v[j]);  // x = W'/s: dL/ds −= dx·W'/s²
    d_folded[j] = dx / s;
  };
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) element(j + l, l);
  for (; j < n; ++j) element(j, 0);
  double sum_gt = 0, sum_dxw = 0;
  for (int l = 0; l < kLanes; ++l) {
    sum_gt += gt[l];
    sum_dxw += dxw[l];
  }
  return sum_gt - sum_dxw / (static_cast<double>(s) * s);
}

// dL/dW'[i][·] → dL/d(row factor) (returned, before the −1/r² of kDivide) and dL/d(col) (added to col_acc).
ILLM_ROW_KERNEL double fold_backward(const Problem& p, int64_t i, const float* d_folded, double* col_acc) {
  const float* w = p.w + i * p.in;
  const float r = p.row_value(i);
  double acc[kLanes] = {};
  auto element = [&](int64_t j, int l) {
    const float a = p.col ? w[j] * p.col[j] : w[j];
    float d_a = d_folded[j];
    if (p.mode != RowFactor::kNone) acc[l] += static_cast<double>(d_folded[j]) * static_cast<double>(a);
    if (p.mode == RowFactor::kMultiply) d_a = d_folded[j] * r;
    if (p.mode == RowFactor::kDivide) d_a = d_folded[j] / r;
    if (col_acc) col_acc[j] += static_cast<double>(d_a) * static_cast<double>(w[j]);
  };
  int64_t j = 0;
  for (; j + kLanes <= p.in; j += kLanes)
    for (int l = 0; l < kLanes; ++l) element(j + l, l);
  for (; j < p.in; ++j) element(j, 0);
  double sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

struct Gradients {
  torch::Tensor col, row, hf, lf;
};

Gradients backward_rows(const Problem& p, const GroupStats& st, const float* grad) {
  Gradients out;
  std::vector<double> d_row(p.out, 0.0);
  std::vector<float> d_hf(p.hf ? p.out * p.groups : 0), d_lf(p.lf ? p.out * p.groups : 0);
  const int threads = threads_for(p.out);
  std::vector<std::vector<double>> d_col(p.col ? threads : 0, std::vector<double>(p.col ? p.in : 0, 0.0));

#pragma omp parallel num_threads(threads)
  {
    double* col_acc = p.col ? d_col[omp_get_thread_num()].data() : nullptr;
    std::vector<float> buf(static_cast<size_t>(p.in)), d_folded(static_cast<size_t>(p.in));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.out; ++i) {
      fold_row(p, i, buf.data());
      for (int64_t k = 0; k < p.groups; ++k) {
        const int64_t g = i * p.groups + k, j0 = k * p.group, j1 = j0 + p.group;
        const float mx = st.max[g], mn = st.min[g];
        const double ds = quantizer_backward(buf.data() + j0, grad + i * p.in + j0, p.group, st.scale[g],
                                             st.zero[g], p.q, d_folded.data() + j0);
        // s = clamp_min((hi − lo)/q, 1e-8), hi = clamp_min(σ(u)·max, 0), lo = clamp_max(σ(l)·min, 0).
        const float hi1 = p.hf ? p.hf[g] * mx : mx, lo1 = p.lf ? p.lf[g] * mn : mn;
        const float hi = hi1 < 0.0f ? 0.0f : hi1, lo = lo1 > 0.0f ? 0.0f : lo1;
        const bool scale_passes = (hi - lo) / p.q >= static_cast<float>(kMinScale);
        const double d_range = scale_passes ? ds / p.q : 0.0;
        const double d_hi1 = hi1 >= 0.0f ? d_range : 0.0, d_lo1 = lo1 <= 0.0f ? -d_range : 0.0;
        if (p.hf) d_hf[g] = static_cast<float>(d_hi1 * mx);
        if (p.lf) d_lf[g] = static_cast<float>(d_lo1 * mn);
        // max/min pass their gradient to the elements that attain them, shared among ties (as amax/amin do).
        const float d_max = static_cast<float>((p.hf ? d_hi1 * p.hf[g] : d_hi1) / st.max_count[g]);
        const float d_min = static_cast<float>((p.lf ? d_lo1 * p.lf[g] : d_lo1) / st.min_count[g]);
        for (int64_t j = j0; j < j1; ++j) {
          if (buf[j] == mx) d_folded[j] += d_max;
          if (buf[j] == mn) d_folded[j] += d_min;
        }
      }
      const double row_acc = fold_backward(p, i, d_folded.data(), col_acc);
      const float r = p.row_value(i);
      d_row[i] = p.mode == RowFactor::kDivide ? -row_acc / (static_cast<double>(r) * r) : row_acc;
    }
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  if (p.mode != RowFactor::kNone) {
    out.row = torch::empty({p.out}, f32);
    for (int64_t i = 0; i < p.out; ++i) out.row.data_ptr<float>()[i] = static_cast<float>(d_row[i]);
  }
  if (p.col) {
    out.col = torch::empty({p.in}, f32);
    float* dst = out.col.data_ptr<float>();
    for (int64_t j = 0; j < p.in; ++j) {
      double sum = 0;
      for (const auto& acc : d_col) sum += acc[j];  // thread order: deterministic for a fixed thread count
      dst[j] = static_cast<float>(sum);
    }
  }
  if (p.hf) out.hf = torch::from_blob(d_hf.data(), {p.out, p.groups}, f32).clone();
  if (p.lf) out.lf = torch::from_blob(d_lf.data(), {p.out, p.groups}, f32).clone();
  return out;
}

// Absent factors travel through autograd as empty tensors (LibTorch 1.13's Function::apply needs defined inputs).
bool present(const torch::Tensor& t) { return t.defined() && t.numel() > 0; }
torch::Tensor or_empty(const torch::Tensor& t) { return present(t) ? t : torch::empty({0}, torch::kFloat32); }
const float* data_or_null(const torch::Tensor& t) { return present(t) ? t.data_ptr<float>() : nullptr; }

Problem make_problem(const torch::Tensor& w, const torch::Tensor& col, const torch::Tensor& row, RowFactor mode,
                     const torch::Tensor& hf, const torch::Tensor& lf, int bits, int group_size) {
  Problem p;
  p.w = w.data_ptr<float>();
  p.col = data_or_null(col);
  p.mode = mode;
  p.row = mode == RowFactor::kNone ? nullptr : data_or_null(row);
  p.hf = data_or_null(hf);
  p.lf = data_or_null(lf);
  p.out = w.size(0);
  p.in = w.size(1);
  p.group = group_size <= 0 ? p.in : group_size;
  p.groups = p.in / p.group;
  p.q = static_cast<float>((1 << bits) - 1);
  return p;
}

// Contiguous float32 CPU copies (no copy when already so); absent stays absent.
torch::Tensor prepared(const torch::Tensor& t) {
  return present(t) ? t.detach().to(torch::kFloat32).contiguous() : torch::Tensor();
}

class FoldQuantFunction : public torch::autograd::Function<FoldQuantFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& w, const torch::Tensor& col,
                               const torch::Tensor& row, const torch::Tensor& hf, const torch::Tensor& lf,
                               int64_t mode, int64_t bits, int64_t group_size) {
    const torch::Tensor wc = prepared(w), cc = prepared(col), rc = prepared(row), hc = prepared(hf), lc = prepared(lf);
    const Problem p = make_problem(wc, cc, rc, static_cast<RowFactor>(mode), hc, lc, static_cast<int>(bits),
                                   static_cast<int>(group_size));
    GroupStats stats(p.out * p.groups);
    torch::Tensor deq = torch::empty({p.out, p.in}, torch::kFloat32);
    forward_rows(p, deq.data_ptr<float>(), nullptr, stats);
    ctx->save_for_backward({wc, cc, rc, hc, lc});
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["bits"] = bits;
    ctx->saved_data["group"] = group_size;
    ctx->saved_data["stats"] = stats.values;
    ctx->saved_data["counts"] = stats.counts;
    return deq;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto mode = static_cast<RowFactor>(ctx->saved_data["mode"].toInt());
    const Problem p = make_problem(saved[0], saved[1], saved[2], mode, saved[3], saved[4],
                                   static_cast<int>(ctx->saved_data["bits"].toInt()),
                                   static_cast<int>(ctx->saved_data["group"].toInt()));
    const GroupStats stats(ctx->saved_data["stats"].toTensor(), ctx->saved_data["counts"].toTensor());
    const torch::Tensor grad = grads[0].to(torch::kFloat32).contiguous();
    const Gradients g = backward_rows(p, stats, grad.data_ptr<float>());
    return {torch::Tensor(), g.col, g.row, g.hf, g.lf, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fused_fold_fake_quant(const torch::Tensor& w, const torch::Tensor& col, const torch::Tensor& row,
                                    RowFactor row_mode, const torch::Tensor& hi_factor,
                                    const torch::Tensor& lo_factor, int bits, int group_size,
                                    WeightQuant* integer_out) {
  if (w.dim() != 2 || !w.device().is_cpu()) throw Error("fused_fold_fake_quant: weight must be a 2-D CPU tensor");
  if (bits < 2 || bits > 8) throw Error("fused_fold_fake_quant: bits must be in 2..8, got " + std::to_string(bits));
  const int64_t in = w.size(1);
  const int64_t g = group_size <= 0 ? in : group_size;
  if (in % g != 0)
    throw Error("fused_fold_fake_quant: in_features " + std::to_string(in) + " is not a multiple of group size " +
                std::to_string(g));
  if (row_mode != RowFactor::kNone && !present(row))
    throw Error("fused_fold_fake_quant: a row factor mode needs a row factor");
  if (!integer_out)
    return FoldQuantFunction::apply(w, or_empty(col), or_empty(row), or_empty(hi_factor), or_empty(lo_factor),
                                    static_cast<int64_t>(row_mode), bits, group_size);

  // Integer results: no gradient needed (the final quantization of a block).
  const torch::Tensor wc = prepared(w), cc = prepared(col), rc = prepared(row), hc = prepared(hi_factor),
                      lc = prepared(lo_factor);
  const Problem p = make_problem(wc, cc, rc, row_mode, hc, lc, bits, group_size);
  GroupStats stats(p.out * p.groups);
  torch::Tensor deq = torch::empty({p.out, p.in}, torch::kFloat32);
  torch::Tensor codes = torch::empty({p.out, p.in}, torch::kUInt8);
  forward_rows(p, deq.data_ptr<float>(), codes.data_ptr<uint8_t>(), stats);
  integer_out->codes = codes;
  integer_out->scale = stats.values[2].reshape({p.out, p.groups}).clone();
  integer_out->zero_point = stats.values[3].reshape({p.out, p.groups}).to(torch::kInt64);
  integer_out->dequantized = deq;
  return deq;
}

}  // namespace illm::calib
