#pragma once
// The weights of one Hugging Face LLaMA checkpoint as LibTorch tensors, in the HF layout ([out, in] for every
// projection, so y = x · Wᵀ), all in one working dtype (float32 or float64). Read once from a TensorStore;
// BF16/F16 files are widened exactly. Tied checkpoints share one tensor between `embed` and `lm_head`.
//
// Block streaming (docs/scale.md): load_block_weights reads one decoder layer, embedding_rows gathers only the
// embedding rows a batch needs; both convert straight from the memory-mapped file into the tensors' storage, and
// the mapped pages are released right after, so a whole checkpoint never needs to be resident.
#include <filesystem>
#include <string>
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

// One named tensor of `shape` as `dtype` (float32 or float64), converted straight into its storage; the shape is
// checked (illm::Error naming the tensor and both shapes).
torch::Tensor load_weight_tensor(const formats::TensorStore& store, const std::string& name,
                                 const std::vector<int64_t>& shape, torch::ScalarType dtype);

// Decoder layer `layer` (HF `model.layers.N.*`) as `dtype`; its tensors are read by up to two threads.
DecoderBlockWeights load_block_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                       int64_t layer, torch::ScalarType dtype);

// The embedding rows of `ids` ([B, T], any integer dtype): [B, T, hidden] in `dtype`, read row by row from the
// store (ids outside [0, vocab) throw illm::Error). The embedding's pages are released afterwards.
torch::Tensor embedding_rows(const formats::LlamaConfig& config, const formats::TensorStore& store,
                             const torch::Tensor& ids, torch::ScalarType dtype);

// Name of the LM head's tensor: lm_head.weight, or the embedding when the config ties them.
std::string lm_head_tensor_name(const formats::LlamaConfig& config);

// Reads every tensor of `config` from `store` (checked with formats::check_llama_tensors first) as `dtype`
// (torch::kFloat32 or torch::kFloat64; anything else throws illm::Error).
LlamaWeights load_llama_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                torch::ScalarType dtype = torch::kFloat32);

// Convenience: config.json + *.safetensors of a model directory.
LlamaWeights load_llama_weights(const std::filesystem::path& model_dir, torch::ScalarType dtype = torch::kFloat32);

}  // namespace illm::calib
