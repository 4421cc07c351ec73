#include "calibration/llama_weights.h"

#include <string>

#include "kernels/error.h"

namespace illm::calib {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text.push_back('x');
    text.append(std::to_string(shape[i]));
  }
  return text;
}

// Copies one named tensor out of the store into an owning torch tensor of the working dtype,
// checking the shape the config implies.
torch::Tensor read_tensor(const formats::TensorStore& store, const std::string& name,
                          const std::vector<int64_t>& expected_shape, torch::ScalarType dtype) {
  if (!store.contains(name)) throw Error("model weights: tensor '" + name + "' is missing");
  const auto& info = store.info(name);
  if (info.shape != expected_shape) {
    throw Error("model weights: tensor '" + name + "' in " + info.file.string() + " has shape [" +
                shape_text(info.shape) + "], config implies [" + shape_text(expected_shape) + "]");
  }
  if (dtype == torch::kFloat64) {
    auto values = store.read_f64(name);
    formats::check_weight_values(info, values);
    return torch::from_blob(values.data(), expected_shape, torch::kFloat64).clone();
  }
  auto values = store.read_f32(name);
  formats::check_weight_values(info, values);
  return torch::from_blob(values.data(), expected_shape, torch::kFloat32).clone();
}

}  // namespace

LlamaWeights load_llama_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
    throw Error("load_llama_weights: working dtype must be float32 or float64");
  formats::check_llama_tensors(config, store);

  const int64_t C = config.hidden_size, I = config.intermediate_size, V = config.vocab_size;
  const int64_t d = config.head_dim();
  const int64_t q_out = config.num_attention_heads * d, kv_out = config.num_key_value_heads * d;

  LlamaWeights w;
  w.config = config;
  w.dtype = dtype;
  w.embed = read_tensor(store, "model.embed_tokens.weight", {V, C}, dtype);
  w.layers.reserve(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    DecoderBlockWeights b;
    b.attn_norm = read_tensor(store, p + "input_layernorm.weight", {C}, dtype);
    b.wq = read_tensor(store, p + "self_attn.q_proj.weight", {q_out, C}, dtype);
    b.wk = read_tensor(store, p + "self_attn.k_proj.weight", {kv_out, C}, dtype);
    b.wv = read_tensor(store, p + "self_attn.v_proj.weight", {kv_out, C}, dtype);
    b.wo = read_tensor(store, p + "self_attn.o_proj.weight", {C, q_out}, dtype);
    b.ffn_norm = read_tensor(store, p + "post_attention_layernorm.weight", {C}, dtype);
    b.w_gate = read_tensor(store, p + "mlp.gate_proj.weight", {I, C}, dtype);
    b.w_up = read_tensor(store, p + "mlp.up_proj.weight", {I, C}, dtype);
    b.w_down = read_tensor(store, p + "mlp.down_proj.weight", {C, I}, dtype);
    w.layers.push_back(std::move(b));
  }
  w.final_norm = read_tensor(store, "model.norm.weight", {C}, dtype);
  // HF ties the head to the embedding whenever the config says so, even if the file also holds lm_head.weight.
  w.lm_head = config.tie_word_embeddings ? w.embed : read_tensor(store, "lm_head.weight", {V, C}, dtype);
  return w;
}

LlamaWeights load_llama_weights(const std::filesystem::path& model_dir, torch::ScalarType dtype) {
  const auto config = formats::load_llama_config(model_dir);
  const auto store = formats::TensorStore::open(model_dir);
  return load_llama_weights(config, store, dtype);
}

}  // namespace illm::calib
