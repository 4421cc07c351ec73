#pragma once
// Block-wise calibration of one decoder block (docs/method.md §2.4–§2.7): RTN, SmoothQuant and FSBR in one pipeline.
//   RTN:         no smoothing, weights per row min/max.
//   SmoothQuant: sites 1, 2, 3, 6 at the SmoothQuant rule with sq_alpha (the FSBR init, §2.4), weights min/max.
//   FSBR:        sites 1–6 + LWC learned with AdamW (wd 0; lr_smooth / lr_lwc), batch 1, `epochs` passes over the
//                samples in a fixed order, loss = MSE(FP block(FP input), fake-quant block(quantized input)),
//                parameters of the epoch with the lowest mean loss kept (best-epoch selection; the initial
//                parameters are a candidate too, with their loss before training), then folded.
// Then, in this order, the recipe's W4A4 levers on the folded block (rotations are applied to `fp` by the caller,
// calibration/rotation.h): online down_proj Hadamard folded into w_down (before training, so FSBR learns with it),
// TRIP channel factors (calibration/trip.h), GPTQ rounding instead of RTN (calibration/gptq.h), the activation clip
// search (calibration/activation_clip.h), the softmax clip search.
//
//
// Activations come as calibration/activations.h stores (in memory or spilled to files, chunk by chunk), on the
// CPU; they are moved to the block weights' device (`--device`) chunk by chunk.
#include <array>
#include <optional>
#include <vector>

#include <torch/torch.h>

#include "calibration/activations.h"
#include "calibration/fake_quant_block.h"
#include "formats/recipe.h"

namespace illm::calib {

struct BlockCalibration {
  // Folded norms and site-5 α. The folded FP linears are not kept (the fused kernel never materializes them;
  // fold_smoothing(fp, smooth, shape) gives them when needed): folded.weights holds the norms only.
  FoldedBlock folded;
  std::array<WeightQuant, kNumLinears> weight_quant;  // integer codes (uint8), scales, zero points
  BlockWeights quantized;                            // folded norms + the dequantized linears
  double loss_before = 0;                            // mean block MSE with the initial parameters
  double loss_after = 0;                             // mean block MSE with the kept parameters
  int best_epoch = -1;                               // -1: initial parameters kept (always for RTN/SmoothQuant)
  std::vector<double> epoch_losses;
  std::optional<double> clip_c;                      // chosen softmax clip (recipe value or search result)
  // Training-point settings of this block's quantized forward: the recipe's online Hadamards, clip ratios and TRIP
  // factors (the next block's inputs must be computed with them).
  FakeQuantSettings settings;
  double seconds = 0;
  double seconds_per_step = 0;                       // FSBR training step (0 without training)
};

// Intra-op threads for one block's passes on sequences of `seq_len`: `requested` only when the largest
// per-sequence activation has >= 2^20 elements, else 1. A batch-1 step of a small block is hundreds of tiny ops;
// splitting each over threads costs an OpenMP/BLAS fork-join per op, which on the loaded shared 2-core machine
// measured ~10x SLOWER than one thread (1 epoch x 8 samples: stories260K 27 s vs 1.3 s, tinybible 46 s vs 4.7 s;
// RTN's no-grad passes, 32 samples: 34 s vs 3.1 s). A fixed rule of the shapes, so results stay deterministic.
int intra_op_threads(const BlockShape& shape, int64_t seq_len, int requested);

// Fake-quant settings of a recipe: training points (§9 #21) or the executor points.
FakeQuantSettings training_settings(const Recipe& recipe);
FakeQuantSettings evaluation_settings(const Recipe& recipe, std::optional<double> clip_c);

// SmoothQuant initialization of sites 1, 2, 3, 6 from the FP statistics (§2.4); sites 4, 5 = 1.
SmoothParams smoothquant_init(const BlockWeights& fp, const ActStats& stats, const BlockShape& shape, double alpha,
                              bool tied_rope_pairs);

// Samples per no-grad forward (statistics, losses, block outputs).
inline constexpr int64_t kEvalChunk = 8;

// Per-input-channel abs-max statistics of the FP block on `fp_in` [N, T, C].
ActStats collect_stats(const BlockWeights& fp, const Activations& fp_in, const RotaryCosSin& rope,
                       const BlockShape& shape);

// Mean over samples of MSE(target[i], block(input[i])) without gradients, processed in chunks of kEvalChunk.
// With `outputs`, the block's outputs are stored there too (one pass gives the loss and the next block's inputs).
// `max_samples` >= 0: the mean over the first max_samples samples only.
double block_loss(const BlockWeights& weights, const torch::Tensor& alpha, const Activations& input,
                  const Activations& target, const RotaryCosSin& rope, const BlockShape& shape,
                  const FakeQuantSettings& settings, Activations* outputs = nullptr, int64_t max_samples = -1);

// Calibrates one block. `fp_in` gives the statistics, `q_in` the inputs of the quantized block (the previous
// quantized blocks' outputs), `fp_target` = FP block(fp_in). With `q_out`, the calibrated block's outputs on
// `q_in` (training fake-quant points: the next block's q_in) are stored there, from the same pass that measures
// loss_after. Progress goes to stderr: per epoch, and within an epoch every few seconds (sample, step time, ETA).
BlockCalibration calibrate_block(const BlockWeights& fp, const BlockShape& shape, const RotaryCosSin& rope,
                                 const Activations& fp_in, const Activations& q_in, const Activations& fp_target,
                                 const Recipe& recipe, int layer, int n_layers, bool show_progress = true,
                                 Activations* q_out = nullptr);

}  // namespace illm::calib
