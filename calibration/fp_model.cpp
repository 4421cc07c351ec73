#include "calibration/fp_model.h"

#include <algorithm>
#include <string>

#include <torch/torch.h>

#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/threads.h"
#include "kernels/error.h"

namespace illm::calib {

struct FpModel::Impl {
  LlamaWeights weights;
};

FpModel::FpModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FpModel::~FpModel() = default;

std::unique_ptr<FpModel> FpModel::load(const std::filesystem::path& model_dir, bool float64) {
  retain_freed_memory();
  auto impl = std::make_unique<Impl>();
  impl->weights = load_llama_weights(model_dir, float64 ? torch::kFloat64 : torch::kFloat32);
  return std::unique_ptr<FpModel>(new FpModel(std::move(impl)));
}

const formats::LlamaConfig& FpModel::config() const { return impl_->weights.config; }
bool FpModel::is_float64() const { return impl_->weights.dtype == torch::kFloat64; }

std::vector<float> FpModel::logits(std::span<const int32_t> ids) const {
  std::vector<float> out;
  const std::vector<int32_t> sequence(ids.begin(), ids.end());
  for_each_logits(std::span<const std::vector<int32_t>>(&sequence, 1), 1,
                  [&](std::size_t, std::span<const float> row) { out.assign(row.begin(), row.end()); });
  return out;
}

void FpModel::for_each_logits(std::span<const std::vector<int32_t>> sequences, int batch_size,
                              const LogitsConsumer& consume) const {
  c10::InferenceMode inference;
  const auto& cfg = impl_->weights.config;
  const std::size_t max_batch = static_cast<std::size_t>(std::max(1, batch_size));
  std::size_t begin = 0;
  while (begin < sequences.size()) {
    const std::size_t T = sequences[begin].size();
    std::size_t end = begin + 1;
    while (end < sequences.size() && end - begin < max_batch && sequences[end].size() == T) ++end;
    const auto B = static_cast<int64_t>(end - begin);
    if (T == 0) throw Error("FpModel: sequence " + std::to_string(begin) + " is empty");
    if (static_cast<int64_t>(T) > cfg.max_position_embeddings)
      throw Error("FpModel: sequence " + std::to_string(begin) + " has " + std::to_string(T) +
                  " tokens, above max_position_embeddings " + std::to_string(cfg.max_position_embeddings));

    auto ids = torch::empty({B, static_cast<int64_t>(T)}, torch::kInt64);
    auto* dst = ids.data_ptr<int64_t>();
    for (std::size_t s = begin; s < end; ++s)
      for (std::size_t t = 0; t < T; ++t) *dst++ = sequences[s][t];

    auto logits = llama_forward(impl_->weights, ids).to(torch::kFloat32).contiguous();  // [B, T, V]
    const float* data = logits.data_ptr<float>();
    const std::size_t per_sequence = T * static_cast<std::size_t>(cfg.vocab_size);
    for (std::size_t s = begin; s < end; ++s)
      consume(s, std::span<const float>(data + (s - begin) * per_sequence, per_sequence));
    begin = end;
  }
}

}  // namespace illm::calib
