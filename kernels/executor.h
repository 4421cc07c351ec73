#pragma once
// The integer executor: the whole integer-only forward pass of a LLaMA decoder (docs/method.md §7.7, §9.1), prefill and
// token-by-token decode over an integer KV cache, returning the LM head's aligned accumulator with its per-token
// dyadic scale. Integer-only (kernels/ audit). Exact definition: docs/integer-semantics.md "## Executor".
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/kv_cache.h"
#include "kernels/optimized/di_matmul_fast.h"
#include "kernels/quantized_model.h"
#include "kernels/reference/rope.h"

namespace illm {

// Logits of `tokens` positions: real logit[t][v] = values[t·vocab + v] · scales[t].m / 2^scales[t].k.
struct IntegerLogits {
  int32_t tokens = 0;
  int32_t vocab = 0;
  std::vector<int64_t> values;  // [tokens][vocab], the LM head's aligned accumulator P'
  std::vector<Dyadic> scales;   // [tokens]
};

// Integer argmax of one row (the row's scale is common to the row, so no scale is needed); ties → lowest id.
int32_t argmax_row(const IntegerLogits& logits, int32_t row);

// Checks everything the executor relies on: shapes, bit widths, table sizes, code and zero-point ranges, scale
// mantissas, and the §3.6 accumulator bounds. Throws illm::Error naming the field (e.g. "layers[1].k_proj.bits").
void validate_quantized_model(const QuantizedModel& model);

// The part of validate_quantized_model that needs no tensors: shape limits (bos_id and eos_id inside the
// vocabulary included), the settings' bit widths and the attention accumulator bounds. Lets a caller refuse a
// recipe for a model before calibrating it (validate_quantized_model starts with this).
void validate_model_settings(const ModelShape& shape, const IntegerSettings& settings);

class Executor {
 public:
  // Validates the model (validate_quantized_model) and prepares its weights. `model` must outlive the executor.
  explicit Executor(const QuantizedModel& model);

  // Runs token_ids at positions position(), position() + 1, … and appends their keys and values to the cache:
  // prefill (many ids) or decode (one id). Prefill of T tokens and T one-token calls give identical logits.
  // Throws illm::Error for an id outside [0, vocab) or when the positions pass shape.max_positions; the cache is
  // then left as it was.
  IntegerLogits forward(std::span<const int32_t> token_ids);

  void reset();  // empties the KV cache: the next forward starts at position 0
  int32_t position() const { return cache_.length(); }

  // Greedy decoding: integer argmax of the last row of `logits`, ties → lowest id.
  static int32_t argmax_last(const IntegerLogits& logits);

  const QuantizedModel& model() const { return model_; }

 private:
  struct PreparedLayer {
    PreparedLinear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };
  const QuantizedModel& model_;
  std::vector<PreparedLayer> layers_;
  PreparedLinear lm_head_;
  RopeTableView rope_;
  KvCache cache_;
};

}  // namespace illm
