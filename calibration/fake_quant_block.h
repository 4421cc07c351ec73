#pragma once
// A simulated quantized LLaMA decoder block ("fake quant") with the six FSBR smoothing sites (docs/method.md §2.2)
// and learnable weight clipping (§1.3 LWC). Two steps, both differentiable:
//   1. fold_smoothing: apply sites 1–6 to the FP weights and norms (exact in FP; site 5's divisor α stays as a
//      run-time per-channel constant of the SwiGLU: g'·σ(g'/α)·u').
//   2. fake_quant_block_forward: the block with fake-quantized weights (quantize_block_weights) and dynamic
//      activation quantizers at the points of FakeQuantSettings.
#include <array>
#include <functional>
#include <memory>
#include <optional>

#include <torch/torch.h>

#include "calibration/act_sites.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/online_hadamard.h"
#include "calibration/quantizers.h"

namespace illm::calib {

struct BlockShape {
  int64_t hidden = 0;        // C
  int64_t intermediate = 0;  // C_f
  int64_t n_heads = 0;       // H
  int64_t n_kv_heads = 0;    // H_kv
  int64_t head_dim = 0;      // d
  double norm_eps = 1e-5;
};

// FP weights of one block (PyTorch layout: linear W is [out, in]); the FP model's per-layer struct.
using BlockWeights = DecoderBlockWeights;

// The seven linears in a fixed order (LWC parameters, quantized weights, reports).
enum LinearIndex { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumLinears };
const char* linear_name(int index);
torch::Tensor& linear_weight(BlockWeights& w, int index);
const torch::Tensor& linear_weight(const BlockWeights& w, int index);

// Smoothing vectors (§2.2). s4 has H_kv·d/2 entries when tied over RoPE pairs (§9 #16), else H_kv·d.
struct SmoothParams {
  torch::Tensor s1, s2, s3, s4, s5, s6;
  bool tied_rope_pairs = true;
  static SmoothParams identity(const BlockShape& shape, bool tied_rope_pairs, torch::Device device = torch::kCPU);
  std::vector<torch::Tensor> all() const { return {s1, s2, s3, s4, s5, s6}; }
};

// Replaces |s| < 1e-2 by ±1e-2 (sign kept, 0 → +) with a straight-through gradient (§2.3).
torch::Tensor guard_smooth(const torch::Tensor& s);

// Result of folding: the transformed FP weights plus site 5's run-time divisor α (= guarded s5).
struct FoldedBlock {
  BlockWeights weights;
  torch::Tensor alpha;  // [C_f]; undefined means α = 1
};
FoldedBlock fold_smoothing(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape);

// LWC logits per linear ([out, in/group] each, on the weights' device); undefined entries mean no clipping (RTN
// min/max).
struct LwcParams {
  std::array<torch::Tensor, kNumLinears> upper, lower;
  static LwcParams init(const BlockWeights& w, int group_size, double logit);
  std::vector<torch::Tensor> all() const;
};

// Quantizes the seven linears (dequantized values replace the weights; norms unchanged). `lwc` may be null.
BlockWeights quantize_block_weights(const BlockWeights& folded, int w_bits, int group_size, const LwcParams* lwc,
                                    std::array<WeightQuant, kNumLinears>* integer_out = nullptr);

// fold_smoothing followed by quantize_block_weights: `weights` holds the folded norms and the fake-quantized
// (dequantized) linears, `alpha` site 5's divisor. For float32 CPU weights each linear goes through the fused
// kernel of calibration/fused_weight_quant.h (one pass, the folded FP linears never materialized, the same values
// bit for bit, a one-pass backward); other devices run the two steps as torch ops. The FSBR training step and
// every final quantization of a block use this. `integer_out` receives codes, scales and zero points.
FoldedBlock fold_and_fake_quantize(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape,
                                   int w_bits, int group_size, const LwcParams* lwc,
                                   std::array<WeightQuant, kNumLinears>* integer_out = nullptr);
// The same through the two torch-op steps on any device (the reference the fused kernel is tested against).
FoldedBlock fold_and_fake_quantize_unfused(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape,
                                           int w_bits, int group_size, const LwcParams* lwc,
                                           std::array<WeightQuant, kNumLinears>* integer_out = nullptr);

struct FakeQuantSettings {
  bool quantize_activations = true;
  int a_bits = 8;
  int qkv_bits = 0;  // the Q, K and V sites (0 = a_bits)
  int swiglu_in_bits = 8;  // g', u' (the released code's 8-bit SwiGLU inputs); >= 16 → off
  // Executor points (§7.1): residual stream / norm inputs as 16-bit symmetric per token, softmax input 16-bit
  // after clipping at −c, probabilities on a 2^−15 grid, SwiGLU output per token a_bits.
  bool executor_points = false;
  std::optional<double> clip_c;  // clipped softmax (x − max ≥ −c); applied only with executor_points
  // Online Hadamard transforms (calibration/rotation.h; null = off): down_proj input (the block's w_down must
  // already hold W·Ĥᵀ) and q, k per head after RoPE. With executor_points the integer 16-bit-code form is simulated.
  std::shared_ptr<const OnlineHadamard> hadamard_down, hadamard_qk;
  // Per-site clip ratios and TRIP channel factors (calibration/act_sites.h); defaults are the plain quantizers.
  SiteQuants sites;
  int trip_max_shift = 0;
  // Per-group activations (kernels/activation_groups.h): the linear-input sites (attn_in, attn_out, ffn_in, down_in)
  // quantize each run of act_group_size channels of a token with its own range; 0 = per token. (The integer
  // operator's 16-bit per-row codes before the groups are not simulated: a 2^−16 relative step.)
  int act_group_size = 0;
};

// Called at every activation site with the value before and after its quantizer (GPTQ Hessians, TRIP statistics).
using SiteObserver = std::function<void(ActSite site, const torch::Tensor& before, const torch::Tensor& after)>;

// Per-input-channel abs-max statistics of the FP block's linear inputs (SmoothQuant / FSBR init, §2.4).
struct ActStats {
  torch::Tensor attn_in;  // [C]      input of q/k/v
  torch::Tensor ffn_in;   // [C]      input of gate/up
  torch::Tensor o_in;     // [H·d]    input of o_proj
  torch::Tensor down_in;  // [C_f]    input of down_proj
  void update(const char* which, const torch::Tensor& x);
  // Observer for decoder_block_forward (calibration/llama_forward.h) that records the four linear inputs.
  BlockObserver observer();
};

// The block on x [B, T, C] → [B, T, C] with causal attention (rms_norm / RoPE of calibration/llama_forward.h). `weights` are used as given (pass the output of
// quantize_block_weights for quantized weights). `alpha` is site 5's divisor (undefined → 1).
torch::Tensor fake_quant_block_forward(const BlockWeights& weights, const torch::Tensor& alpha, const torch::Tensor& x,
                                       const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& settings,
                                       ActStats* stats = nullptr, const SiteObserver* observe_sites = nullptr);

}  // namespace illm::calib
