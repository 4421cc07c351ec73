#include "calibration/quantizers.h"

#include "kernels/error.h"

namespace illm::calib {

torch::Tensor round_half_away(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return torch::sign(x) * torch::floor(torch::abs(x) + 0.5);
}

torch::Tensor round_ste(const torch::Tensor& x) { return x + (round_half_away(x) - x).detach(); }

torch::Tensor fake_quant_asym_range(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi,
                                    int bits) {
  const double q_max = static_cast<double>((1 << bits) - 1);
  const torch::Tensor scale = ((hi - lo) / q_max).clamp_min(kMinScale);
  const torch::Tensor zero = round_half_away(-lo.detach() / scale.detach()).clamp(0, q_max);
  const torch::Tensor codes = torch::clamp(round_ste(x / scale) + zero, 0, q_max);
  return (codes - zero) * scale;
}

torch::Tensor fake_quant_per_token(const torch::Tensor& x, int bits, bool symmetric) {
  if (bits >= 16) return x;
  if (bits < 2) throw Error("fake_quant_per_token: bits must be >= 2, got " + std::to_string(bits));
  if (symmetric) {
    const double q_pos = static_cast<double>((1 << (bits - 1)) - 1);
    const torch::Tensor scale = (x.abs().amax(-1, true) / q_pos).clamp_min(kMinScale);
    const torch::Tensor codes = torch::clamp(round_ste(x / scale), -q_pos - 1, q_pos);
    return codes * scale;
  }
  const torch::Tensor hi = x.amax(-1, true).clamp_min(0);
  const torch::Tensor lo = x.amin(-1, true).clamp_max(0);
  return fake_quant_asym_range(x, lo, hi, bits);
}

WeightQuant quantize_weight(const torch::Tensor& w, int bits, int group_size, const torch::Tensor& upper,
                            const torch::Tensor& lower) {
  if (w.dim() != 2) throw Error("quantize_weight: weight must be 2-D");
  if (bits < 2 || bits > 8) throw Error("quantize_weight: bits must be in 2..8, got " + std::to_string(bits));
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t g = group_size <= 0 ? in : group_size;
  if (in % g != 0)
    throw Error("quantize_weight: in_features " + std::to_string(in) + " is not a multiple of group size " +
                std::to_string(g));
  const torch::Tensor grouped = w.reshape({out, in / g, g});
  torch::Tensor hi = grouped.amax(-1);
  torch::Tensor lo = grouped.amin(-1);
  if (upper.defined()) hi = torch::sigmoid(upper) * hi;
  if (lower.defined()) lo = torch::sigmoid(lower) * lo;
  hi = hi.clamp_min(0).unsqueeze(-1);
  lo = lo.clamp_max(0).unsqueeze(-1);

  const double q_max = static_cast<double>((1 << bits) - 1);
  WeightQuant result;
  const torch::Tensor scale = ((hi - lo) / q_max).clamp_min(kMinScale);
  const torch::Tensor zero = round_half_away(-lo.detach() / scale.detach()).clamp(0, q_max);
  const torch::Tensor codes = torch::clamp(round_ste(grouped / scale) + zero, 0, q_max);
  result.dequantized = ((codes - zero) * scale).reshape({out, in});
  result.codes = codes.detach().reshape({out, in}).to(torch::kInt64);
  result.scale = scale.detach().squeeze(-1);
  result.zero_point = zero.detach().squeeze(-1).to(torch::kInt64);
  return result;
}

torch::Tensor fake_quant_weight(const torch::Tensor& w, int bits, int group_size, const torch::Tensor& upper,
                                const torch::Tensor& lower) {
  return quantize_weight(w, bits, group_size, upper, lower).dequantized;
}

}  // namespace illm::calib
