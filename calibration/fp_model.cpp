#include "calibration/fp_model.h"

#include <algorithm>
#include <map>
#include <string>

#include <torch/torch.h>

#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/threads.h"
#include "formats/safetensors.h"
#include "kernels/error.h"

namespace illm::calib {

struct FpModel::Impl {
  formats::LlamaConfig config;
  formats::TensorStore store;
  torch::ScalarType dtype = torch::kFloat32;
};

FpModel::FpModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FpModel::~FpModel() = default;

std::unique_ptr<FpModel> FpModel::load(const std::filesystem::path& model_dir, bool float64) {
  retain_freed_memory();
  const formats::LlamaConfig config = formats::load_llama_config(model_dir);
  formats::TensorStore store = formats::TensorStore::open(model_dir);
  formats::check_llama_tensors(config, store);
  auto impl = std::unique_ptr<Impl>(new Impl{config, std::move(store), float64 ? torch::kFloat64 : torch::kFloat32});
  return std::unique_ptr<FpModel>(new FpModel(std::move(impl)));
}

const formats::LlamaConfig& FpModel::config() const { return impl_->config; }
bool FpModel::is_float64() const { return impl_->dtype == torch::kFloat64; }

std::vector<float> FpModel::logits(std::span<const int32_t> ids) const {
  std::vector<float> out;
  const std::vector<int32_t> sequence(ids.begin(), ids.end());
  for_each_logits(std::span<const std::vector<int32_t>>(&sequence, 1), 1,
                  [&](std::size_t, std::span<const float> row) { out.assign(row.begin(), row.end()); });
  return out;
}

void FpModel::for_each_logits(std::span<const std::vector<int32_t>> sequences, int batch_size,
                              const LogitsConsumer& consume, std::size_t activation_budget_bytes) const {
  c10::InferenceMode inference;
  const auto& cfg = impl_->config;
  const auto& store = impl_->store;
  const torch::ScalarType dtype = impl_->dtype;
  const std::size_t max_batch = static_cast<std::size_t>(std::max(1, batch_size));
  const std::size_t element = dtype == torch::kFloat64 ? 8 : 4;

  // Batches: runs of equal length, up to batch_size sequences each (what llama_forward ran at once).
  struct Batch {
    std::size_t begin, end, length;
  };
  std::vector<Batch> batches;
  for (std::size_t begin = 0; begin < sequences.size();) {
    const std::size_t T = sequences[begin].size();
    if (T == 0) throw Error("FpModel: sequence " + std::to_string(begin) + " is empty");
    if (static_cast<int64_t>(T) > cfg.max_position_embeddings)
      throw Error("FpModel: sequence " + std::to_string(begin) + " has " + std::to_string(T) +
                  " tokens, above max_position_embeddings " + std::to_string(cfg.max_position_embeddings));
    std::size_t end = begin + 1;
    while (end < sequences.size() && end - begin < max_batch && sequences[end].size() == T) ++end;
    batches.push_back({begin, end, T});
    begin = end;
  }

  for (std::size_t first = 0; first < batches.size();) {
    // A group of batches whose hidden states fit the budget (at least one batch).
    std::size_t last = first, bytes = 0;
    while (last < batches.size()) {
      const std::size_t b = (batches[last].end - batches[last].begin) * batches[last].length *
                            static_cast<std::size_t>(cfg.hidden_size) * element;
      if (last > first && bytes + b > activation_budget_bytes) break;
      bytes += b;
      ++last;
    }
    std::vector<torch::Tensor> hidden;
    for (std::size_t k = first; k < last; ++k) {
      const Batch& b = batches[k];
      auto ids = torch::empty({static_cast<int64_t>(b.end - b.begin), static_cast<int64_t>(b.length)}, torch::kInt64);
      auto* dst = ids.data_ptr<int64_t>();
      for (std::size_t s = b.begin; s < b.end; ++s)
        for (int32_t id : sequences[s]) *dst++ = id;
      hidden.push_back(embedding_rows(cfg, store, ids, dtype));
    }
    std::map<std::size_t, RotaryCosSin> rotations;
    for (std::size_t k = first; k < last; ++k)
      if (!rotations.count(batches[k].length))
        rotations.emplace(batches[k].length, rotary_cos_sin(cfg, static_cast<int64_t>(batches[k].length), dtype));
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
      const DecoderBlockWeights block = load_block_weights(cfg, store, l, dtype);
      for (std::size_t k = first; k < last; ++k)
        hidden[k - first] = decoder_block_forward(cfg, block, hidden[k - first], rotations.at(batches[k].length));
    }
    const torch::Tensor final_norm = load_weight_tensor(store, "model.norm.weight", {cfg.hidden_size}, dtype);
    const torch::Tensor head =
        load_weight_tensor(store, lm_head_tensor_name(cfg), {cfg.vocab_size, cfg.hidden_size}, dtype);
    for (std::size_t k = first; k < last; ++k) {
      const Batch& b = batches[k];
      const torch::Tensor logits =
          torch::nn::functional::linear(rms_norm(hidden[k - first], final_norm, cfg.rms_norm_eps), head)
              .to(torch::kFloat32)
              .contiguous();  // [B, T, V]
      hidden[k - first] = torch::Tensor();
      const float* data = logits.data_ptr<float>();
      const std::size_t per_sequence = b.length * static_cast<std::size_t>(cfg.vocab_size);
      for (std::size_t s = b.begin; s < b.end; ++s)
        consume(s, std::span<const float>(data + (s - b.begin) * per_sequence, per_sequence));
    }
    first = last;
  }
}

}  // namespace illm::calib
