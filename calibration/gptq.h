#pragma once
// GPTQ weight rounding (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", 2022) on the fixed quantization grid of calibration/quantizers.h (per row or per group, min/max or
// LWC-clipped ranges of the unrounded weight, computed once: "static groups"). Minimizes ‖(W − Ŵ)·Xᵀ‖² column by
// column: with H = XᵀX + λ·mean(diag H)·I and U the upper Cholesky factor of H⁻¹, column i is rounded to the grid
// and its error e = (w_i − ŵ_i)/U_ii is pushed onto the not-yet-rounded columns, w_j −= e·U_ij (j > i).
// Columns whose diag(H) is 0 (never active) are set to 0 before rounding. act_order processes columns in
// decreasing diag(H) (codes are returned in the original column order).
#include <array>

#include <torch/torch.h>

#include "calibration/activations.h"
#include "calibration/fake_quant_block.h"

namespace illm::calib {

struct GptqOptions {
  double damp = 0.01;
  bool act_order = false;
};

// Σ xᵀx over the rows of x [..., in], in float64.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in_features);
  void add(const torch::Tensor& x);
  const torch::Tensor& sum() const { return sum_; }  // [in, in]
  int64_t rows() const { return rows_; }

 private:
  torch::Tensor sum_;
  int64_t rows_ = 0;
};

// GPTQ of one weight [out, in] against `hessian` [in, in] (any positive multiple of XᵀX). The grid (scale, zero
// point) is quantize_weight(w, bits, group_size, upper, lower)'s. Returns codes, scales, zero points and the
// dequantized weight (no gradient).
WeightQuant gptq_quantize_weight(const torch::Tensor& w, const torch::Tensor& hessian, int bits, int group_size,
                                 const torch::Tensor& upper, const torch::Tensor& lower, const GptqOptions& options);

// GPTQ of the seven linears of one block, in the order data flows so that each linear's Hessian comes from the
// inputs it will really see: q/k/v on the quantized attention-norm output, then o_proj with q/k/v rounded, then
// gate/up, then down_proj (a no-grad pass over `inputs` per stage, activations quantized by `settings`). The inputs
// are read chunk by chunk (kEvalChunk samples, moved to the weights' device) and each stage's Hessian accumulates
// over the chunks: besides one chunk's activations it costs one [in, in] float64 matrix (C_f²·8 bytes for
// down_proj: 970 MB at C_f = 11008).
BlockWeights gptq_quantize_block(const BlockWeights& folded, const torch::Tensor& alpha, const Activations& inputs,
                                 const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& settings,
                                 int w_bits, int group_size, const LwcParams* lwc, const GptqOptions& options,
                                 std::array<WeightQuant, kNumLinears>* integer_out);

}  // namespace illm::calib
