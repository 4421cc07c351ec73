#pragma once
// An online Hadamard transform inside the fake-quant block (down_proj input; q and k after RoPE): the activation x
// is replaced by Ĥ·x (Ĥ = H/√g orthogonal, H the integer matrix of kernels/reference/hadamard.h) just before its
// quantizer, and the consumer's weights absorb Ĥᵀ (down_proj: W·Ĥᵀ; q·k is invariant). Two simulations:
//   float (training, differentiable):  x·Ĥᵀ
//   integer (executor points, what the planned integer operator does): per row symmetric 16-bit codes
//     c = round(x/s), s = max|x|/(2^15 − 1); y = H·c exactly (integers); result y·s/√g.
#include <cstdint>

#include <torch/torch.h>

#include "kernels/reference/hadamard.h"

namespace illm::calib {

struct OnlineHadamard {
  HadamardPlan plan;
  torch::Tensor normalized;  // [n, n] float32 Ĥ = H/√g
  torch::Tensor integer;     // [n, n] float64 H (integer entries)
  static OnlineHadamard of_size(int64_t n);
  int64_t size() const { return plan.n; }
};

// x [..., n] → Ĥ·x per row (float), or the 16-bit integer-code form when `integer_codes`.
torch::Tensor apply_online_hadamard(const torch::Tensor& x, const OnlineHadamard& h, bool integer_codes);

}  // namespace illm::calib
