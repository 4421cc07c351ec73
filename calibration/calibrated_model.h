#pragma once
// Torch-free result of calibration: everything a converter needs to build illm::QuantizedModel
// (kernels/quantized_model.h). Per layer: the quantized linears of the FOLDED weights (FSBR/SmoothQuant smoothing
// applied, docs/method.md §2.7; per-row or per-group scale, zero point and integer codes, LWC clipping included),
// the site-5 divisor α kept at run time by DI-SwiGLU, the norms and the softmax clip c. Float32 throughout,
// row-major [out][in] like PyTorch / Hugging Face.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace illm::calib {

struct CalibratedLinear {
  int32_t out_features = 0;
  int32_t in_features = 0;
  int32_t bits = 0;
  int32_t group_size = 0;              // columns per (scale, zero point); == in_features for per-channel
  std::vector<uint8_t> codes;          // [out][in], in [0, 2^bits − 1]
  std::vector<float> scales;           // [out][in/group_size]
  std::vector<int32_t> zero_points;    // [out][in/group_size], in [0, 2^bits − 1]
  // Dequantized weight: scales[r][c/g] · (codes[r][c] − zero_points[r][c/g]).
  float dequantized(int32_t row, int32_t col) const {
    const int32_t groups = in_features / group_size;
    const size_t g = static_cast<size_t>(row) * groups + col / group_size;
    return scales[g] * static_cast<float>(static_cast<int32_t>(codes[static_cast<size_t>(row) * in_features + col]) -
                                          zero_points[g]);
  }
};

struct CalibratedLayer {
  std::vector<float> attn_norm;  // γ1 ⊘ s1
  std::vector<float> ffn_norm;   // γ2 ⊘ s2
  CalibratedLinear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  std::vector<float> swiglu_alpha;  // [C_f] site-5 α: SwiGLU = g'·σ(g'/α)·u' (all ones without site-5 smoothing)
  std::optional<double> softmax_clip;  // c; nullopt = no clipping
  // Activation-site refinements (calibration/act_sites.h, order attn_in, q, k, v, attn_out, ffn_in, down_in); no
  // integer operator yet: per-site clip ratios (empty = all 1) and TRIP exponents α_c (empty inner vector = none).
  std::vector<double> act_clip_ratios;
  std::vector<std::vector<int8_t>> trip_shifts;
  double loss_before = 0;  // block reconstruction MSE with initial parameters
  double loss_after = 0;   // ... with the kept (best-epoch) parameters
};

struct CalibratedModel {
  // Shape (from config.json).
  int32_t hidden = 0, intermediate = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, vocab = 0;
  int32_t max_positions = 0;
  int64_t bos_id = 1, eos_id = 2;
  double rms_norm_eps = 1e-5;
  std::vector<double> rope_inv_freq;  // θ_i, float64 (for the integer RoPE tables)
  // Recipe essentials.
  std::string method;  // "rtn" | "smoothquant" | "fsbr"
  int32_t w_bits = 0, a_bits = 0, swiglu_in_bits = 8;
  int32_t qkv_bits = 0;  // Q, K, V code width (IntegerSettings::qkv_bits; 0 = a_bits)
  // Online Hadamard transforms the model needs at run time (calibration/rotation.h; no integer operator yet) and
  // the TRIP exponent bound K. Offline rotations are folded into the weights and need nothing here.
  bool hadamard_down = false, hadamard_qk = false;
  int32_t trip_max_shift = 0;
  int32_t act_group_size = 0;  // per-group activations at the linear inputs (0 = per token)
  // Unquantized FP parts (quantized by the converter's own rules: embedding rows, final norm, head).
  std::vector<float> embed;       // [vocab][hidden]
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab][hidden] (a copy of embed when tied)
  bool tied_head = false;
  // Recipe key gptq_head: Σ x̂ᵀx̂ [hidden][hidden] (float64) over the LM head's inputs on the calibration samples (the
  // quantized trajectory after the final norm, quantized per token at the head's width), for GPTQ rounding of the
  // head rows (calibration/integerize.h); empty = round to nearest. Damping and column order as the recipe's GPTQ.
  std::vector<double> head_hessian;
  double head_gptq_damp = 0.01;
  bool head_gptq_act_order = false;
  // Recipe keys head_in_bits / head_group_size: the LM head's input width (0 = its weight width) and its weights'
  // group size (0 = per row).
  int32_t head_in_bits = 0;
  int32_t head_group_size = 0;
  std::vector<CalibratedLayer> layers;
};

struct BlockReport {
  double loss_before = 0, loss_after = 0, seconds = 0;
  double seconds_per_step = 0;  // FSBR training step (0 without training)
  int best_epoch = -1;
  std::vector<double> epoch_losses;
  std::optional<double> softmax_clip;
};

struct CalibrationReport {
  std::string method;
  double seconds = 0;  // wall time of the whole calibration
  std::vector<BlockReport> blocks;
};

}  // namespace illm::calib
