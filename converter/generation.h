#pragma once
// Text generation with the integer executor: greedy decoding is the integer argmax of the logits; sampling
// (temperature > 0, nucleus top-p) converts the last row to float after the executor, as evaluation does.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kernels/executor.h"

namespace illm::converter {

struct SamplingOptions {
  int max_tokens = 48;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  bool stop_at_eos = true;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids, prompt excluded
  int32_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;   // time of all tokens after the first
  bool stopped_at_eos = false;
  bool stopped_at_context = false;  // max_tokens not reached: the context (max_positions) is full
};

// Starts from an empty KV cache. `on_token` is called with each new id as soon as it is known. A prompt may fill
// the whole context (then one token is generated); generation stops early at EOS or when the context is full.
// Throws illm::Error for an empty or too long prompt, a temperature that is not a finite number >= 0, or a
// top-p outside (0, 1].
GenerationResult generate_tokens(Executor& executor, std::span<const int32_t> prompt, const SamplingOptions& options,
                                 const std::function<void(int32_t)>& on_token = {});

}  // namespace illm::converter
