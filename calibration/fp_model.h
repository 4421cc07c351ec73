#pragma once
// The floating-point reference model behind a torch-free interface, for converter/ (which must not include
// LibTorch headers). Wraps calibration/llama_weights.h + llama_forward.h.
//
// Logits are returned as float32 on both paths: the float64 path computes everything in float64 and rounds only
// the final logits (relative error 6e-8, far below what perplexity/KL reports resolve); this keeps one logits
// type for the FP model and the integer model's float-converted logits.
//
// Block streaming (docs/scale.md): the model keeps only the memory-mapped checkpoint. Sequences are run layer by
// layer, as many at a time as keep their hidden states within kActivationBudgetBytes; each layer's weights are read
// (and released from the mapping) once per such group, the LM head once per group. Peak memory: one block's
// weights + the group's hidden states + the head + one batch's intermediates, whatever the number of layers.
// Within a batch the operations are those of llama_forward, so the logits are the same bit for bit.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "formats/llama_config.h"

namespace illm::calib {

class FpModel {
 public:
  static constexpr std::size_t kActivationBudgetBytes = std::size_t{1} << 30;

  // Reads DIR/config.json and DIR's safetensors (throws illm::Error on bad files). float64: compute in float64.
  static std::unique_ptr<FpModel> load(const std::filesystem::path& model_dir, bool float64 = false);
  ~FpModel();
  FpModel(const FpModel&) = delete;
  FpModel& operator=(const FpModel&) = delete;

  const formats::LlamaConfig& config() const;
  bool is_float64() const;

  // Logits of one sequence (positions 0..T-1): T·vocab floats, row t = the prediction after ids[0..t].
  // Ids outside [0, vocab) throw illm::Error.
  std::vector<float> logits(std::span<const int32_t> ids) const;

  // Many independent sequences: consecutive sequences of equal length are run together in batches of up to
  // `batch_size`; `consume(index, logits)` is called once per sequence, in order, with its T·vocab logits
  // (the span is valid only during the call). `activation_budget_bytes` bounds the hidden states of a group of
  // batches run through the layers together (each group reads the weights once).
  using LogitsConsumer = std::function<void(std::size_t index, std::span<const float> logits)>;
  void for_each_logits(std::span<const std::vector<int32_t>> sequences, int batch_size, const LogitsConsumer& consume,
                       std::size_t activation_budget_bytes = kActivationBudgetBytes) const;

 private:
  struct Impl;
  explicit FpModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace illm::calib
