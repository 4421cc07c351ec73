#pragma once
// One linear's smoothing fold and LWC weight fake-quantization fused into one pass over its weight (CPU, float32),
// with a hand-written backward (docs/scale.md "FSBR step"). The unfused path (fold_smoothing, then
// quantize_weight: calibration/fake_quant_block.h, quantizers.h) runs ~25 elementwise torch ops over every
// weight per training step and as many again backwards, and keeps their intermediates for autograd; at 7B shapes
// (202M weights per block) that, not the matmuls, dominated an FSBR step. Here:
//   forward:  W'[i][j] = (W[i][j] · col[j]) {·, /} row[i] (or no row factor), then per row i and group of columns
//             the quantizer of quantize_weight (hi = clamp_min(σ(u)·max W', 0), lo = clamp_max(σ(l)·min W', 0),
//             s = clamp_min((hi − lo)/(2^b − 1), 1e-8), z = clamp(round(−lo/s), 0, 2^b − 1),
//             Ŵ = (clamp(round_ste(W'/s) + z, 0, 2^b − 1) − z)·s), the same float32 operations in the same order,
//             so Ŵ, the codes and the scales are bit-identical to the unfused path;
//   backward: the gradients that autograd would derive through those ops (STE rounding, zero point without
//             gradient, max/min gradient shared among ties) with respect to col, row and the LWC factors σ(u),
//             σ(l), in one pass over W and dL/dŴ, recomputing W' instead of storing it. Sums are accumulated in
//             float64, so they equal autograd's float32 sums up to rounding.
// W itself gets no gradient (the FP weights are constants of calibration).
#include <torch/torch.h>

#include "calibration/quantizers.h"

namespace illm::calib {

enum class RowFactor { kNone, kMultiply, kDivide };

// Ŵ as above. w [out, in] float32 CPU contiguous; col [in] or undefined (1); row [out] (ignored for kNone);
// hi_factor / lo_factor [out, in/group] or undefined (no clipping); group_size <= 0: per row. Differentiable with
// respect to col, row, hi_factor and lo_factor. With `integer_out`, also the codes (uint8), scale and zero point
// (int64), as quantize_weight returns them.
torch::Tensor fused_fold_fake_quant(const torch::Tensor& w, const torch::Tensor& col, const torch::Tensor& row,
                                    RowFactor row_mode, const torch::Tensor& hi_factor,
                                    const torch::Tensor& lo_factor, int bits, int group_size,
                                    WeightQuant* integer_out = nullptr);

}  // namespace illm::calib
