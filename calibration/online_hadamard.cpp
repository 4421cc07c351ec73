// Online Hadamard transform of the fake-quant block. See online_hadamard.h.
#include "calibration/online_hadamard.h"

#include <cmath>

#include "calibration/quantizers.h"

namespace illm::calib {

OnlineHadamard OnlineHadamard::of_size(int64_t n) {
  OnlineHadamard h;
  h.plan = plan_hadamard(n);
  const std::vector<int32_t> m = hadamard_matrix(h.plan);
  h.integer = torch::from_blob(const_cast<int32_t*>(m.data()), {n, n}, torch::kInt32).to(torch::kFloat64);
  h.normalized = (h.integer / std::sqrt(static_cast<double>(h.plan.gain2))).to(torch::kFloat32);
  return h;
}

torch::Tensor apply_online_hadamard(const torch::Tensor& x, const OnlineHadamard& h, bool integer_codes) {
  if (!integer_codes) return torch::matmul(x, h.normalized.to(x.scalar_type()).t());
  torch::NoGradGuard no_grad;
  const torch::Tensor x64 = x.detach().to(torch::kFloat64);
  const double q_pos = 32767.0;
  const torch::Tensor s = (x64.abs().amax(-1, true) / q_pos).clamp_min(kMinScale);
  const torch::Tensor codes = round_half_away(x64 / s).clamp(-q_pos, q_pos);
  // |H·c| ≤ row_l1·2^15 < 2^53 for every supported size: the float64 product is exact.
  const torch::Tensor y = torch::matmul(codes, h.integer.t());
  return (y * s / std::sqrt(static_cast<double>(h.plan.gain2))).to(x.scalar_type());
}

}  // namespace illm::calib
