#pragma once
// Torch-free access to the recipe's offline residual-stream rotation Q (calibration/rotation.h) for the model-level
// float rows that are streamed rather than held as tensors: the embedding rows (block 0's inputs and the integer
// model's embedding) and the LM head rows (converter/quantize_pipeline.cpp). Q is residual_rotation(recipe.rotation,
// hidden, rotation_seed_of(recipe)), the same matrix rotate_block uses for the decoder blocks; the products are computed in
// float64 and rounded to float32 once, as rotate_embedding_and_head does.
#include <cstdint>
#include <memory>
#include <span>

#include "formats/recipe.h"

namespace illm::calib {

class ResidualRowRotation {
 public:
  // Q for `recipe` and `hidden` (a no-op rotation when recipe.rotation is none).
  ResidualRowRotation(const Recipe& recipe, int64_t hidden);
  ~ResidualRowRotation();
  ResidualRowRotation(ResidualRowRotation&&) noexcept;
  ResidualRowRotation& operator=(ResidualRowRotation&&) noexcept;

  bool enabled() const { return impl_ != nullptr; }
  // rows [count][hidden] row-major ← rows·Q (embedding rows).
  void rotate_embedding_rows(std::span<float> rows) const;
  // rows ← (rows·diag(final_norm))·Q (LM head rows: the final norm's gain moves into the head, the final norm of the
  // rotated model is all ones).
  void rotate_head_rows(std::span<float> rows, std::span<const float> final_norm) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace illm::calib
