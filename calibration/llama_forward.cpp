#include "calibration/llama_forward.h"

#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace illm::calib {

RotaryCosSin rotary_cos_sin(const formats::LlamaConfig& config, const torch::Tensor& positions,
                            torch::ScalarType dtype) {
  auto inv_freq_values = formats::rope_inverse_frequencies(config);
  const auto half = static_cast<int64_t>(inv_freq_values.size());
  if (half * 2 != config.head_dim())
    throw Error("rotary_cos_sin: " + std::to_string(half) + " inverse frequencies for head_dim " +
                std::to_string(config.head_dim()));
  auto inv_freq = torch::from_blob(inv_freq_values.data(), {half}, torch::kFloat64).clone();
  auto angles = torch::outer(positions.to(torch::kFloat64), inv_freq);  // [T, d/2]
  auto emb = torch::cat({angles, angles}, -1);                          // [T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

RotaryCosSin rotary_cos_sin(const formats::LlamaConfig& config, int64_t seq_len, torch::ScalarType dtype) {
  return rotary_cos_sin(config, torch::arange(seq_len, torch::kInt64), dtype);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * torch::rsqrt(variance + eps));
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, x.size(-1) - half);
  return torch::cat({-x2, x1}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryCosSin& rot) {
  // cos/sin [T, d] broadcast over [B, heads, T, d].
  return x * rot.cos + rotate_half(x) * rot.sin;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               torch::Tensor* probs_out) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1);
  if (Hkv <= 0 || H % Hkv != 0)
    throw Error("causal_attention: " + std::to_string(H) + " query heads are not a multiple of " +
                std::to_string(Hkv) + " key/value heads");
  const int64_t group = H / Hkv;
  auto repeat_kv = [&](const torch::Tensor& t) {
    if (group == 1) return t;
    return t.unsqueeze(2).expand({B, Hkv, group, t.size(2), d}).reshape({B, H, t.size(2), d});
  };
  auto keys = repeat_kv(k), values = repeat_kv(v);
  const int64_t S = keys.size(2);
  // Scores = (q·kᵀ)/sqrt(d) + causal mask in one pass (baddbmm with the additive mask as its input): the T×T
  // score tensors dominate the cost of small models. Masked entries get −inf, so they vanish in the softmax.
  auto future = torch::ones({T, S}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(S - T + 1);
  auto mask = torch::zeros({T, S}, q.options()).masked_fill_(future, -std::numeric_limits<double>::infinity());
  auto scores = torch::baddbmm(mask, q.reshape({B * H, T, d}), keys.reshape({B * H, S, d}).transpose(1, 2),
                               /*beta=*/1, /*alpha=*/1.0 / std::sqrt(static_cast<double>(d)));
  auto probs = torch::softmax(scores, -1).view({B, H, T, S});
  if (probs_out) *probs_out = probs;
  return torch::matmul(probs, values);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) { return torch::silu(gate) * up; }

const char* block_tap_name(BlockTap tap) {
  switch (tap) {
    case BlockTap::attn_input: return "attn_input";
    case BlockTap::query: return "query";
    case BlockTap::key: return "key";
    case BlockTap::value: return "value";
    case BlockTap::attn_probs: return "attn_probs";
    case BlockTap::attn_context: return "attn_context";
    case BlockTap::ffn_input: return "ffn_input";
    case BlockTap::ffn_hidden: return "ffn_hidden";
  }
  return "?";
}

torch::Tensor decoder_block_forward(const formats::LlamaConfig& config, const DecoderBlockWeights& block,
                                    const torch::Tensor& hidden, const RotaryCosSin& rot,
                                    const BlockObserver& observe) {
  if (hidden.dim() != 3 || hidden.size(2) != config.hidden_size)
    throw Error("decoder_block_forward: hidden must be [B, T, " + std::to_string(config.hidden_size) + "]");
  const int64_t B = hidden.size(0), T = hidden.size(1);
  if (rot.cos.size(0) != T)
    throw Error("decoder_block_forward: RoPE tables cover " + std::to_string(rot.cos.size(0)) +
                " positions, hidden has " + std::to_string(T));
  const int64_t d = config.head_dim(), H = config.num_attention_heads, Hkv = config.num_key_value_heads;
  auto tap = [&](BlockTap t, const torch::Tensor& x) {
    if (observe) observe(t, x);
  };

  auto x = rms_norm(hidden, block.attn_norm, config.rms_norm_eps);
  tap(BlockTap::attn_input, x);
  auto heads = [&](const torch::Tensor& w, int64_t n) {  // [B, T, n·d] → [B, n, T, d]
    return torch::nn::functional::linear(x, w).view({B, T, n, d}).transpose(1, 2);
  };
  auto q = apply_rotary(heads(block.wq, H), rot);
  auto k = apply_rotary(heads(block.wk, Hkv), rot);
  auto v = heads(block.wv, Hkv);
  tap(BlockTap::query, q);
  tap(BlockTap::key, k);
  tap(BlockTap::value, v);
  torch::Tensor probs;
  auto context = causal_attention(q, k, v, observe ? &probs : nullptr);
  if (observe) tap(BlockTap::attn_probs, probs);
  context = context.transpose(1, 2).reshape({B, T, H * d});
  tap(BlockTap::attn_context, context);
  auto h = hidden + torch::nn::functional::linear(context, block.wo);

  auto y = rms_norm(h, block.ffn_norm, config.rms_norm_eps);
  tap(BlockTap::ffn_input, y);
  auto act = swiglu(torch::nn::functional::linear(y, block.w_gate), torch::nn::functional::linear(y, block.w_up));
  tap(BlockTap::ffn_hidden, act);
  return h + torch::nn::functional::linear(act, block.w_down);
}

torch::Tensor embed_tokens(const LlamaWeights& weights, const torch::Tensor& ids) {
  if (ids.dim() != 2) throw Error("embed_tokens: ids must be [B, T]");
  auto ids64 = ids.to(torch::kInt64);
  if (ids64.numel() > 0) {
    const int64_t lo = ids64.min().item<int64_t>(), hi = ids64.max().item<int64_t>();
    if (lo < 0 || hi >= weights.config.vocab_size)
      throw Error("embed_tokens: token id " + std::to_string(lo < 0 ? lo : hi) + " outside the vocabulary [0, " +
                  std::to_string(weights.config.vocab_size) + ")");
  }
  return weights.embed.index_select(0, ids64.reshape({-1})).view({ids64.size(0), ids64.size(1), -1});
}

torch::Tensor lm_head_forward(const LlamaWeights& weights, const torch::Tensor& hidden) {
  auto normed = rms_norm(hidden, weights.final_norm, weights.config.rms_norm_eps);
  return torch::nn::functional::linear(normed, weights.lm_head);
}

torch::Tensor llama_forward(const LlamaWeights& weights, const torch::Tensor& ids) {
  auto h = embed_tokens(weights, ids);
  const auto rot = rotary_cos_sin(weights.config, ids.size(1), weights.dtype);
  for (const auto& block : weights.layers) h = decoder_block_forward(weights.config, block, h, rot);
  return lm_head_forward(weights, h);
}

}  // namespace illm::calib
