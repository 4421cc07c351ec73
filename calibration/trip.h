#pragma once
// TRIP channel factors (Agile-Quant, Shen et al., AAAI 2024, arXiv 2312.05693): activation outlier channels are
// handled by per-channel power-of-two factors on top of the per-token quantizer, as in the power-of-two-factor (PTF)
// observers of the paper's released code (taken over from FQ-ViT): channel c is quantized with the step
// s_t·2^(α_c − K) (s_t the token's dynamic step, α_c ∈ [0, K] static), so channels far below the token's outliers get
// up to 2^K finer steps; in integers the factor is a left shift of the centered code by α_c before the matmul
// (docs/planned-operators.md). α_c is chosen per channel on calibration activations: the α with the smallest
// Σ_t (x_tc − x̂_tc)² (ties: the larger α).
#include <torch/torch.h>

#include "calibration/act_sites.h"
#include "calibration/activations.h"
#include "calibration/fake_quant_block.h"

namespace illm::calib {

// Squared error of each candidate α ∈ [0, K] per channel at one site, accumulated over batches of activations.
class TripCalibrator {
 public:
  TripCalibrator(int64_t channels, int bits, int max_shift, double clip_ratio);
  void add(const torch::Tensor& x);  // [..., channels], values before the site's quantizer
  torch::Tensor shifts() const;      // [channels] int64 α_c
  const torch::Tensor& errors() const { return errors_; }  // [K + 1, channels]

 private:
  int bits_, max_shift_;
  double clip_ratio_;
  torch::Tensor errors_;
};

// The sites that get TRIP factors: the inputs of the seven linears (attn_in, attn_out, ffn_in, down_in).
bool trip_site(int site);

// α per TRIP site for one block: one no-grad pass of `weights` over `inputs` with `settings` (its clip ratios
// apply; TRIP is off during the pass), chunk by chunk (kEvalChunk samples; the statistics are (K + 1) float64 errors
// per channel). Returns `settings.sites` with the shifts set and max shift K.
SiteQuants calibrate_trip(const BlockWeights& weights, const torch::Tensor& alpha, const Activations& inputs,
                          const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& settings,
                          int bits, int max_shift);

}  // namespace illm::calib
