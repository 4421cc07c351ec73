// GPTQ weight rounding. See gptq.h.
#include "calibration/gptq.h"

#include <algorithm>
#include <cmath>

#include "calibration/fsbr.h"
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

WeightQuant gptq_quantize_weight(const torch::Tensor& w, const torch::Tensor& hessian, int bits, int group_size,
                                 const torch::Tensor& upper, const torch::Tensor& lower, const GptqOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t out = w.size(0), in = w.size(1);
  if (hessian.dim() != 2 || hessian.size(0) != in || hessian.size(1) != in)
    throw Error("gptq: Hessian must be [" + std::to_string(in) + ", " + std::to_string(in) + "]");
  if (!(options.damp > 0)) throw Error("gptq: damping must be > 0");
  const int64_t group = group_size <= 0 ? in : group_size;
  const WeightQuant grid = quantize_weight(w.detach(), bits, group_size, upper.defined() ? upper.detach() : upper,
                                           lower.defined() ? lower.detach() : lower);
  // The column loop runs on the CPU in float64 (weights on another device come back as the result).
  const torch::Tensor scale64 = grid.scale.to(torch::kCPU, torch::kFloat64).contiguous();
  const torch::Tensor zero64 = grid.zero_point.to(torch::kCPU, torch::kFloat64).contiguous();

  torch::Tensor W = w.detach().to(torch::kCPU, torch::kFloat64).clone();
  torch::Tensor H = hessian.detach().to(torch::kCPU, torch::kFloat64).clone();
  const torch::Tensor dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(dead, 1.0);
  W.masked_fill_(dead.unsqueeze(0), 0.0);
  const torch::Tensor perm = options.act_order ? torch::argsort(H.diagonal(), /*stable=*/true, 0, /*descending=*/true)
                                               : torch::arange(in, torch::kLong);
  W = W.index_select(1, perm).contiguous();
  H = H.index_select(0, perm).index_select(1, perm);
  H.diagonal().add_(options.damp * H.diagonal().mean().item<double>());
  const torch::Tensor h_inv = torch::cholesky_inverse(torch::linalg_cholesky(H));
  const torch::Tensor U = torch::linalg_cholesky(h_inv, /*upper=*/true).contiguous();

  const double q_max = static_cast<double>((1 << bits) - 1);
  torch::Tensor codes = torch::zeros({out, in}, torch::kInt64);
  double* wp = W.data_ptr<double>();
  const double* up = U.data_ptr<double>();
  const double* sp = scale64.data_ptr<double>();
  const double* zp = zero64.data_ptr<double>();
  int64_t* cp = codes.data_ptr<int64_t>();
  const int64_t* pp = perm.data_ptr<int64_t>();
  const int64_t groups = in / group;
  for (int64_t i = 0; i < in; ++i) {
    const int64_t col = pp[i], g = col / group;
    const double u_ii = up[i * in + i];
    for (int64_t r = 0; r < out; ++r) {
      double* row = wp + r * in;
      const double s = sp[r * groups + g], z = zp[r * groups + g];
      const double q = std::clamp(round_half_away(row[i] / s) + z, 0.0, q_max);
      cp[r * in + col] = static_cast<int64_t>(q);
      const double err = (row[i] - (q - z) * s) / u_ii;
      for (int64_t j = i + 1; j < in; ++j) row[j] -= err * up[i * in + j];
    }
  }
  WeightQuant result;
  result.codes = codes.to(w.device());
  result.scale = grid.scale;
  result.zero_point = grid.zero_point;
  const torch::Tensor c = result.codes.to(grid.scale.scalar_type()).reshape({out, groups, group});
  const torch::Tensor z = grid.zero_point.to(grid.scale.scalar_type()).unsqueeze(-1);
  result.dequantized = ((c - z) * grid.scale.unsqueeze(-1)).reshape({out, in}).to(w.scalar_type());
  return result;
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
