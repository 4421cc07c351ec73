#pragma once
// Fake quantizers with a straight-through estimator (docs/method.md §1.3, §2.5). Rounding is half away from zero
// (§1.2, the integer engine's rdiv), not torch.round's half-to-even. Every range is widened to include 0
// (§9 #2), so asymmetric zero points lie in [0, 2^n − 1]. Zero points are rounded without an STE gradient
// (OmniQuant): the gradient reaches the range only through the scale.
#include <torch/torch.h>

namespace illm::calib {

// Smallest scale used anywhere (guards all-zero rows).
inline constexpr double kMinScale = 1e-8;

// round half away from zero, no gradient.
torch::Tensor round_half_away(const torch::Tensor& x);
// Forward: round_half_away(x); backward: identity.
torch::Tensor round_ste(const torch::Tensor& x);

// Asymmetric n-bit fake quantization of x with per-row ranges lo/hi broadcastable to x (already containing 0):
// s = (hi − lo)/(2^n − 1), z = round(−lo/s) (no gradient), x̂ = s·(clamp(round_ste(x/s) + z, 0, 2^n − 1) − z).
torch::Tensor fake_quant_asym_range(const torch::Tensor& x, const torch::Tensor& lo, const torch::Tensor& hi, int bits);

// Dynamic per-row activation quantizer over the LAST dimension (per token for [.., T, C]; per (token, head)
// for [B, H, T, d]). Asymmetric by default; symmetric: s = max|x|/(2^(n−1) − 1), codes in [−2^(n−1), 2^(n−1) − 1].
// bits >= 16 returns x unchanged (the released code's convention for "16-bit" points, §2.5).
torch::Tensor fake_quant_per_token(const torch::Tensor& x, int bits, bool symmetric = false);

// Integer result of a weight quantization: W ≈ scale[g]·(codes − zero_point[g]) per group of `group_size`
// consecutive input columns of a row (group_size == in_features → per output channel).
struct WeightQuant {
  torch::Tensor codes;       // [out, in] int64 (values in [0, 2^bits − 1])
  torch::Tensor scale;       // [out, in/group_size] float
  torch::Tensor zero_point;  // [out, in/group_size] int64
  torch::Tensor dequantized; // [out, in] float, differentiable w.r.t. W and the LWC logits (STE)
};

// Weight quantizer with OmniQuant LWC (§1.3): per row (or group) x_max = σ(upper)·max W, x_min = σ(lower)·min W,
// widened to include 0. `upper`/`lower` are the logits, shape [out, in/group_size]; undefined tensors mean
// "no clipping" (plain min/max, i.e. RTN). group_size <= 0 means per output channel.
WeightQuant quantize_weight(const torch::Tensor& w, int bits, int group_size, const torch::Tensor& upper,
                            const torch::Tensor& lower);

// Convenience: dequantized weights only.
torch::Tensor fake_quant_weight(const torch::Tensor& w, int bits, int group_size = 0,
                                const torch::Tensor& upper = {}, const torch::Tensor& lower = {});

}  // namespace illm::calib
