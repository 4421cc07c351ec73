#pragma once
// Hugging Face LLaMA config.json: the fields the FP model and the converter need, validated for consistency
// (heads dividing hidden, KV heads dividing heads, ...), plus the tensor-shape check against a TensorStore and
// the RoPE inverse frequencies (Hugging Face semantics, float64). Errors name the file, the field and the reason.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace illm::formats {

// rope_scaling from config.json. type: "linear", "dynamic" or "llama3" ("default"/null give no RopeScaling).
// "dynamic" (NTK) only changes frequencies beyond max_position_embeddings, which evaluation never exceeds,
// so it is accepted and behaves like no scaling.
struct RopeScaling {
  std::string type;
  double factor = 1;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  int64_t original_max_position_embeddings = 0;
};

struct LlamaConfig {
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0,
          num_key_value_heads = 0, vocab_size = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1, eos_token_id = 2;  // eos: the first one when config.json lists several
  std::string torch_dtype;
  std::filesystem::path source;  // the config.json it was read from, for messages

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Accepts a config.json path or the model directory holding it. Refuses non-LLaMA model_type/architectures,
// unsupported features (biases, non-SiLU activation, unknown rope_scaling) and inconsistent shapes.
LlamaConfig load_llama_config(const std::filesystem::path& config_json_or_dir);
// Same from JSON text; `source` names it in error messages.
LlamaConfig parse_llama_config(const std::string& json_text, const std::filesystem::path& source);

// Every tensor LlamaForCausalLM needs is present, floating-point, with the shape the config implies
// (lm_head.weight may be absent when the embeddings are tied). Errors name the file, tensor and both shapes.
void check_llama_tensors(const LlamaConfig& cfg, const TensorStore& store);

// The largest magnitude a weight may have: float16's largest finite value. Checkpoints are trained and shipped in
// 16-bit formats and hold weights far below it; far beyond it the integer path's dyadic scales leave their range
// (a weight of 3e38 made DI-Exp refuse a scale exponent of −65, naming no tensor).
inline constexpr double kMaxWeightMagnitude = 65504.0;

// Every element of a weight tensor read from `info` is finite and within ±kMaxWeightMagnitude; otherwise throws
// illm::Error naming the file, the tensor, the element and its value ("NaN in embed_tokens" would otherwise end
// as a NaN perplexity, or a model file written from it).
// `first`: the element index of values[0] in the tensor (a part read on its own, e.g. embedding rows).
void check_weight_values(const TensorInfo& info, std::span<const float> values, int64_t first = 0);
void check_weight_values(const TensorInfo& info, std::span<const double> values, int64_t first = 0);

// RoPE inverse frequencies θ_i, i < head_dim/2, as Hugging Face computes them (default, "linear" and
// "llama3" rope_scaling), in float64.
std::vector<double> rope_inverse_frequencies(const LlamaConfig& cfg);

}  // namespace illm::formats
