#include "calibration/llama_weights.h"

#include <omp.h>

#include <algorithm>
#include <iterator>
#include <span>
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

void check_dtype(torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
    throw Error("model weights: working dtype must be float32 or float64");
}

}  // namespace

torch::Tensor load_weight_tensor(const formats::TensorStore& store, const std::string& name,
                                 const std::vector<int64_t>& expected_shape, torch::ScalarType dtype) {
  check_dtype(dtype);
  if (!store.contains(name)) throw Error("model weights: tensor '" + name + "' is missing");
  const auto& info = store.info(name);
  if (info.shape != expected_shape) {
    throw Error("model weights: tensor '" + name + "' in " + info.file.string() + " has shape [" +
                shape_text(info.shape) + "], config implies [" + shape_text(expected_shape) + "]");
  }
  torch::Tensor t = torch::empty(expected_shape, dtype);
  const auto n = static_cast<size_t>(t.numel());
  if (dtype == torch::kFloat64) {
    const std::span<double> values(t.data_ptr<double>(), n);
    store.read_into(name, values);
    formats::check_weight_values(info, values);
  } else {
    const std::span<float> values(t.data_ptr<float>(), n);
    store.read_into(name, values);
    formats::check_weight_values(info, values);
  }
  return t;
}

DecoderBlockWeights load_block_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                       int64_t layer, torch::ScalarType dtype) {
  check_dtype(dtype);
  const int64_t C = config.hidden_size, I = config.intermediate_size;
  const int64_t d = config.head_dim();
  const int64_t q_out = config.num_attention_heads * d, kv_out = config.num_key_value_heads * d;
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  DecoderBlockWeights b;
  struct Item {
    torch::Tensor* target;
    std::string name;
    std::vector<int64_t> shape;
  };
  // Largest first, so two threads finish together.
  const Item items[] = {{&b.w_gate, p + "mlp.gate_proj.weight", {I, C}},
                        {&b.w_up, p + "mlp.up_proj.weight", {I, C}},
                        {&b.w_down, p + "mlp.down_proj.weight", {C, I}},
                        {&b.wq, p + "self_attn.q_proj.weight", {q_out, C}},
                        {&b.wo, p + "self_attn.o_proj.weight", {C, q_out}},
                        {&b.wk, p + "self_attn.k_proj.weight", {kv_out, C}},
                        {&b.wv, p + "self_attn.v_proj.weight", {kv_out, C}},
                        {&b.attn_norm, p + "input_layernorm.weight", {C}},
                        {&b.ffn_norm, p + "post_attention_layernorm.weight", {C}}};
  constexpr int kItems = static_cast<int>(std::size(items));
  std::string error;  // the first error of the parallel region, rethrown after it
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::min(2, std::max(1, omp_get_max_threads())))
  for (int i = 0; i < kItems; ++i) {
    try {
      *items[i].target = load_weight_tensor(store, items[i].name, items[i].shape, dtype);
    } catch (const std::exception& e) {
#pragma omp critical(illm_load_block)
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);
  return b;
}

torch::Tensor embedding_rows(const formats::LlamaConfig& config, const formats::TensorStore& store,
                             const torch::Tensor& ids, torch::ScalarType dtype) {
  check_dtype(dtype);
  if (ids.dim() != 2) throw Error("embedding_rows: ids must be [B, T]");
  const std::string name = "model.embed_tokens.weight";
  const int64_t C = config.hidden_size, V = config.vocab_size;
  if (!store.contains(name)) throw Error("model weights: tensor '" + name + "' is missing");
  if (store.info(name).shape != std::vector<int64_t>{V, C})
    throw Error("model weights: tensor '" + name + "' has shape [" + shape_text(store.info(name).shape) +
                "], config implies [" + std::to_string(V) + "x" + std::to_string(C) + "]");
  const torch::Tensor flat = ids.to(torch::kInt64).contiguous().reshape({-1});
  torch::Tensor rows = torch::empty({flat.numel(), C}, dtype);
  const int64_t* id = flat.data_ptr<int64_t>();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    if (id[i] < 0 || id[i] >= V)
      throw Error("embedding: token id " + std::to_string(id[i]) + " outside the vocabulary [0, " +
                  std::to_string(V) + ")");
    if (dtype == torch::kFloat64) {
      const std::span<double> row(rows.data_ptr<double>() + i * C, C);
      store.read_range_into(name, id[i] * C, row);
      formats::check_weight_values(store.info(name), row, id[i] * C);
    } else {
      const std::span<float> row(rows.data_ptr<float>() + i * C, C);
      store.read_range_into(name, id[i] * C, row);
      formats::check_weight_values(store.info(name), row, id[i] * C);
    }
  }
  store.release(name);
  return rows.view({ids.size(0), ids.size(1), C});
}

std::string lm_head_tensor_name(const formats::LlamaConfig& config) {
  return config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

LlamaWeights load_llama_weights(const formats::LlamaConfig& config, const formats::TensorStore& store,
                                torch::ScalarType dtype) {
  check_dtype(dtype);
  formats::check_llama_tensors(config, store);

  const int64_t C = config.hidden_size, V = config.vocab_size;
  LlamaWeights w;
  w.config = config;
  w.dtype = dtype;
  w.embed = load_weight_tensor(store, "model.embed_tokens.weight", {V, C}, dtype);
  w.layers.reserve(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) w.layers.push_back(load_block_weights(config, store, l, dtype));
  w.final_norm = load_weight_tensor(store, "model.norm.weight", {C}, dtype);
  // HF ties the head to the embedding whenever the config says so, even if the file also holds lm_head.weight.
  w.lm_head = config.tie_word_embeddings ? w.embed : load_weight_tensor(store, "lm_head.weight", {V, C}, dtype);
  return w;
}

LlamaWeights load_llama_weights(const std::filesystem::path& model_dir, torch::ScalarType dtype) {
  const auto config = formats::load_llama_config(model_dir);
  const auto store = formats::TensorStore::open(model_dir);
  return load_llama_weights(config, store, dtype);
}

}  // namespace illm::calib
