// GPTQ weight rounding. See gptq.h.
#include "calibration/gptq.h"

#include <algorithm>
#include <cmath>

#include "calibration/fsbr.h"
#include "calibration/gptq_rows.h"
#include "kernels/error.h"

namespace illm::calib {
namespace {

double round_half_away(double x) { return std::copysign(std::floor(std::fabs(x) + 0.5), x); }

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t in_features)
    : sum_(torch::zeros({in_features, in_features}, torch::kFloat64)) {}

void HessianAccumulator::add(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor rows = x.detach().reshape({-1, x.size(-1)}).to(torch::kCPU, torch::kFloat64);
  if (rows.size(1) != sum_.size(0))
    throw Error("HessianAccumulator: inputs have " + std::to_string(rows.size(1)) + " features, expected " +
                std::to_string(sum_.size(0)));
  sum_.addmm_(rows.t(), rows);
  rows_ += rows.size(0);
}

namespace {

// The column order and the upper Cholesky factor U of H⁻¹ (after damping) that the rounding loop walks.
struct ColumnFactor {
  torch::Tensor perm;  // [in] int64: the i-th column processed is perm[i]
  torch::Tensor dead;  // [in] bool: diag(H) == 0 (never active), in the original order
  torch::Tensor upper; // [in, in] float64, in the processing order
};

ColumnFactor factor_columns(const torch::Tensor& hessian, int64_t in, const GptqOptions& options) {
  if (hessian.dim() != 2 || hessian.size(0) != in || hessian.size(1) != in)
    throw Error("gptq: Hessian must be [" + std::to_string(in) + ", " + std::to_string(in) + "]");
  if (!(options.damp > 0)) throw Error("gptq: damping must be > 0");
  torch::Tensor H = hessian.detach().to(torch::kCPU, torch::kFloat64).clone();
  ColumnFactor f;
  f.dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(f.dead, 1.0);
  f.perm = options.act_order ? torch::argsort(H.diagonal(), /*stable=*/true, 0, /*descending=*/true)
                             : torch::arange(in, torch::kLong);
  H = H.index_select(0, f.perm).index_select(1, f.perm);
  H.diagonal().add_(options.damp * H.diagonal().mean().item<double>());
  const torch::Tensor h_inv = torch::cholesky_inverse(torch::linalg_cholesky(H));
  f.upper = torch::linalg_cholesky(h_inv, /*upper=*/true).contiguous();
  return f;
}

// The GPTQ column loop on `rows` rows of W (float64, columns already in the factor's order, dead columns zeroed):
// column i is rounded on its (row, group) grid and its error e = (w_i − ŵ_i)/U_ii is pushed onto the later columns,
// w_j −= e·U_ij. Columns outermost, so U is read once per call whatever the number of rows. codes[r][perm[i]].
void round_columns(double* w, int64_t rows, int64_t in, const ColumnFactor& f, const double* scale,
                   const double* zero, int64_t group, double q_max, int64_t* codes) {
  const double* up = f.upper.data_ptr<double>();
  const int64_t* pp = f.perm.data_ptr<int64_t>();
  const int64_t groups = in / group;
  for (int64_t i = 0; i < in; ++i) {
    const int64_t col = pp[i], g = col / group;
    const double u_ii = up[i * in + i];
    for (int64_t r = 0; r < rows; ++r) {
      double* row = w + r * in;
      const double s = scale[r * groups + g], z = zero[r * groups + g];
      const double q = std::clamp(round_half_away(row[i] / s) + z, 0.0, q_max);
      codes[r * in + col] = static_cast<int64_t>(q);
      const double err = (row[i] - (q - z) * s) / u_ii;
      for (int64_t j = i + 1; j < in; ++j) row[j] -= err * up[i * in + j];
    }
  }
}

}  // namespace

WeightQuant gptq_quantize_weight(const torch::Tensor& w, const torch::Tensor& hessian, int bits, int group_size,
                                 const torch::Tensor& upper, const torch::Tensor& lower, const GptqOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t out = w.size(0), in = w.size(1);
  const ColumnFactor factor = factor_columns(hessian, in, options);
  const int64_t group = group_size <= 0 ? in : group_size;
  const WeightQuant grid = quantize_weight(w.detach(), bits, group_size, upper.defined() ? upper.detach() : upper,
                                           lower.defined() ? lower.detach() : lower);
  // The column loop runs on the CPU in float64 (weights on another device come back as the result).
  const torch::Tensor scale64 = grid.scale.to(torch::kCPU, torch::kFloat64).contiguous();
  const torch::Tensor zero64 = grid.zero_point.to(torch::kCPU, torch::kFloat64).contiguous();
  torch::Tensor W = w.detach().to(torch::kCPU, torch::kFloat64).clone();
  W.masked_fill_(factor.dead.unsqueeze(0), 0.0);
  W = W.index_select(1, factor.perm).contiguous();
  torch::Tensor codes = torch::zeros({out, in}, torch::kInt64);
  round_columns(W.data_ptr<double>(), out, in, factor, scale64.data_ptr<double>(), zero64.data_ptr<double>(), group,
                static_cast<double>((1 << bits) - 1), codes.data_ptr<int64_t>());
  WeightQuant result;
  const int64_t groups = in / group;
  result.codes = codes.to(w.device());
  result.scale = grid.scale;
  result.zero_point = grid.zero_point;
  const torch::Tensor c = result.codes.to(grid.scale.scalar_type()).reshape({out, groups, group});
  const torch::Tensor z = grid.zero_point.to(grid.scale.scalar_type()).unsqueeze(-1);
  result.dequantized = ((c - z) * grid.scale.unsqueeze(-1)).reshape({out, in}).to(w.scalar_type());
  return result;
}

struct GptqRowRounder::Factor {
  ColumnFactor columns;
  int64_t in = 0;
};

GptqRowRounder::GptqRowRounder(const std::vector<double>& hessian, int64_t in_features, double damp, bool act_order) {
  if (in_features <= 0 || hessian.size() != static_cast<size_t>(in_features * in_features))
    throw Error("gptq: Hessian has " + std::to_string(hessian.size()) + " entries, expected " +
                std::to_string(in_features) + "²");
  torch::NoGradGuard no_grad;
  const torch::Tensor H = torch::from_blob(const_cast<double*>(hessian.data()), {in_features, in_features},
                                           torch::kFloat64);
  factor_ = std::make_unique<Factor>(Factor{factor_columns(H, in_features, {damp, act_order}), in_features});
}

GptqRowRounder::~GptqRowRounder() = default;
GptqRowRounder::GptqRowRounder(GptqRowRounder&&) noexcept = default;
GptqRowRounder& GptqRowRounder::operator=(GptqRowRounder&&) noexcept = default;

int64_t GptqRowRounder::in_features() const { return factor_->in; }

void GptqRowRounder::round_rows(const float* rows, int64_t count, int64_t group, const double* scale,
                                const int64_t* zero_point, int64_t q_max, uint8_t* codes) const {
  const int64_t in = factor_->in;
  const ColumnFactor& f = factor_->columns;
  const bool* dead = f.dead.data_ptr<bool>();
  const int64_t* perm = f.perm.data_ptr<int64_t>();
  if (group <= 0) group = in;
  if (in % group != 0)
    throw Error("gptq: group of " + std::to_string(group) + " columns does not divide " + std::to_string(in));
  const int64_t groups = in / group;
  std::vector<double> w(static_cast<size_t>(count * in)), zero(static_cast<size_t>(count * groups));
  for (int64_t r = 0; r < count; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      const int64_t col = perm[i];
      w[static_cast<size_t>(r * in + i)] = dead[col] ? 0.0 : static_cast<double>(rows[r * in + col]);
    }
  }
  for (size_t i = 0; i < zero.size(); ++i) zero[i] = static_cast<double>(zero_point[i]);
  std::vector<int64_t> wide(static_cast<size_t>(count * in));
  round_columns(w.data(), count, in, f, scale, zero.data(), group, static_cast<double>(q_max), wide.data());
  for (size_t i = 0; i < wide.size(); ++i) codes[i] = static_cast<uint8_t>(wide[i]);
}

BlockWeights gptq_quantize_block(const BlockWeights& folded, const torch::Tensor& alpha, const Activations& inputs,
                                 const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& settings,
                                 int w_bits, int group_size, const LwcParams* lwc, const GptqOptions& options,
                                 std::array<WeightQuant, kNumLinears>* integer_out) {
  torch::NoGradGuard no_grad;
  struct Stage {
    ActSite site;
    std::vector<int> linears;
  };
  const Stage stages[] = {{kSiteAttnIn, {kQ, kK, kV}}, {kSiteAttnOut, {kO}}, {kSiteFfnIn, {kGate, kUp}},
                          {kSiteDownIn, {kDown}}};
  BlockWeights current = folded;
  for (const Stage& stage : stages) {
    HessianAccumulator acc(linear_weight(folded, stage.linears[0]).size(1));
    const SiteObserver observe = [&](ActSite site, const torch::Tensor&, const torch::Tensor& after) {
      if (site == stage.site) acc.add(after);
    };
    for (int64_t i = 0; i < inputs.samples(); i += kEvalChunk)
      fake_quant_block_forward(current, alpha,
                               inputs.read(i, std::min(kEvalChunk, inputs.samples() - i)).to(folded.wq.device()), rope,
                               shape, settings, nullptr, &observe);
    for (int index : stage.linears) {
      const torch::Tensor upper = lwc ? lwc->upper[index] : torch::Tensor();
      const torch::Tensor lower = lwc ? lwc->lower[index] : torch::Tensor();
      WeightQuant q = gptq_quantize_weight(linear_weight(folded, index), acc.sum(), w_bits, group_size, upper, lower,
                                           options);
      linear_weight(current, index) = q.dequantized;
      if (integer_out) (*integer_out)[index] = std::move(q);
    }
  }
  return current;
}

}  // namespace illm::calib
