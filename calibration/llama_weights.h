#pragma once
// The weights of one Hugging Face LLaMA checkpoint as LibTorch tensors, in the HF layout ([out, in] for every
// projection, so y = x · Wᵀ), all in one working dtype (float32 or float64). Read once from a TensorStore;
// BF16/F16 files are widened exactly. Tied checkpoints share one tensor between `embed` and `lm_head`.
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "formats/llama_config.h"
#include "formats/safetensors.h"

namespace illm::calib {

// One decoder layer (HF `model.layers.N.*`).
struct DecoderBlockWeights {
  torch::Tensor attn_norm;  // [C]            input_layernorm.weight
  torch::Tensor wq;         // [H·d, C]       self_attn.q_proj.weight
  torch::Tensor wk;         // [Hkv·d, C]     self_attn.k_proj.weight
  torch::Tensor wv;         // [Hkv·d, C]     self_attn.v_proj.weight
  torch::Tensor wo;         // [C, H·d]       self_attn.o_proj.weight
  torch::Tensor ffn_norm;   // [C]            post_attention_layernorm.weight
  torch::Tensor w_gate;     // [I, C]         mlp.gate_proj.weight
  torch::Tensor w_up;       // [I, C]         mlp.up_proj.weight
  torch::Tensor w_down;     // [C, I]         mlp.down_proj.weight
};

struct LlamaWeights {
  formats::LlamaConfig config;
  torch::ScalarType dtype = torch::kFloat32;  // working dtype of every tensor below
  torch::Tensor embed;                         // [V, C]  model.embed_tokens.weight
  std::vector<DecoderBlockWeights> layers;     // num_hidden_layers entries
  torch::Tensor final_norm;                    // [C]     model.norm.weight
  torch::Tensor lm_head;                       // [V, C]  lm_head.weight, or `embed` itself when tied
  bool tied_head() const { return lm_head.is_same(embed); }
};

// Reads every tensor of `config` from `store` (checked with formats::check_llama_tensors first) as `dtype`
// (torch::kFloat32 or torch::kFloat64; anything else throws illm::Error).
LlamaWeights load_llama_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                torch::ScalarType dtype = torch::kFloat32);

// Convenience: config.json + *.safetensors of a model directory.
LlamaWeights load_llama_weights(const std::filesystem::path& model_dir, torch::ScalarType dtype = torch::kFloat32);

}  // namespace illm::calib
