#pragma once
// The floating-point LLaMA forward pass, computed exactly as Hugging Face `LlamaForCausalLM` does, in the
// working dtype of the weights (float32, or float64 for reference numbers). Every piece is a free function so
// calibration can run one decoder block in isolation (block-wise reconstruction, activation statistics):
//
//   auto w = load_llama_weights(dir);                         // calibration/llama_weights.h
//   auto rot = rotary_cos_sin(w.config, T, w.dtype);          // once per sequence length
//   torch::Tensor h = embed_tokens(w, ids);                   // [B, T, C]
//   for (auto& block : w.layers) h = decoder_block_forward(w.config, block, h, rot);
//   torch::Tensor logits = lm_head_forward(w, h);             // [B, T, V]
//
// Shapes: B batch, T tokens, C hidden, H query heads, Hkv key/value heads, d head_dim, I intermediate, V vocab.
// No function here records gradients unless the caller enables them (they are plain differentiable torch ops,
// so fake-quantized weights may be passed in a DecoderBlockWeights copy for training).
#include <functional>

#include <torch/torch.h>

#include "calibration/llama_weights.h"
#include "formats/llama_config.h"

namespace illm::calib {

// Rotate-half RoPE tables for the given positions: cos/sin of p·θ_i, [T, d], the d/2 frequencies θ_i
// (formats::rope_inverse_frequencies, rope_scaling applied) laid out twice as HF's cat(freqs, freqs).
// Angles and cos/sin are computed in float64, then cast to `dtype`.
struct RotaryCosSin {
  torch::Tensor cos;  // [T, d]
  torch::Tensor sin;  // [T, d]
};
RotaryCosSin rotary_cos_sin(const formats::LlamaConfig& config, const torch::Tensor& positions,
                            torch::ScalarType dtype);
// Positions 0 .. seq_len-1.
RotaryCosSin rotary_cos_sin(const formats::LlamaConfig& config, int64_t seq_len, torch::ScalarType dtype);

// HF LlamaRMSNorm: weight · (x · rsqrt(mean(x², last dim) + eps)), in x's dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// HF rotate_half: [x1, x2] → [−x2, x1] over the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x);

// x · cos + rotate_half(x) · sin for x of shape [B, heads, T, d].
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryCosSin& rot);

// Causal softmax attention with grouped-query heads: query head h reads key/value head h / (H / Hkv), as HF's
// repeat_kv. q [B, H, T, d], k/v [B, Hkv, T, d] → context [B, H, T, d]. Scores scaled by 1/sqrt(d), softmax
// in q's dtype. `probs_out`, when given, receives the attention probabilities [B, H, T, T].
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               torch::Tensor* probs_out = nullptr);

// SwiGLU: silu(gate) · up.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// Intermediate activations of a decoder block that calibration may observe (statistics, smoothing factors).
enum class BlockTap {
  attn_input,    // [B, T, C]     input_layernorm output = input of q/k/v_proj
  query,         // [B, H, T, d]  after RoPE
  key,           // [B, Hkv, T, d] after RoPE
  value,         // [B, Hkv, T, d]
  attn_probs,    // [B, H, T, T]  softmax output
  attn_context,  // [B, T, H·d]   input of o_proj
  ffn_input,     // [B, T, C]     post_attention_layernorm output = input of gate/up_proj
  ffn_hidden,    // [B, T, I]     silu(gate)·up = input of down_proj
};
const char* block_tap_name(BlockTap tap);
using BlockObserver = std::function<void(BlockTap, const torch::Tensor&)>;

// One HF LlamaDecoderLayer: h + attn(rms_norm(h)), then + mlp(rms_norm(·)). hidden [B, T, C] in the block's
// dtype; `rot` must cover T positions. `observe` (optional) is called at each BlockTap in order.
torch::Tensor decoder_block_forward(const formats::LlamaConfig& config, const DecoderBlockWeights& block,
                                    const torch::Tensor& hidden, const RotaryCosSin& rot,
                                    const BlockObserver& observe = {});

// Token embedding lookup: ids [B, T] (any integer dtype) → [B, T, C]. Ids outside [0, V) throw illm::Error.
torch::Tensor embed_tokens(const LlamaWeights& weights, const torch::Tensor& ids);

// Final RMSNorm and LM head: hidden [B, T, C] → logits [B, T, V].
torch::Tensor lm_head_forward(const LlamaWeights& weights, const torch::Tensor& hidden);

// The whole model on ids [B, T] (positions 0..T-1 in every row) → logits [B, T, V] in the working dtype.
torch::Tensor llama_forward(const LlamaWeights& weights, const torch::Tensor& ids);

}  // namespace illm::calib
