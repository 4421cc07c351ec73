#pragma once
// The evaluation protocol of token pruning (docs/token-pruning.md): each window as a prefill of its first half
// (pruned when the executor's pruning is on) followed by token-by-token decode of the second half. Every token of
// the second half is scored: the prefill's last row predicts the first, each decode step the next. With pruning
// off this equals ordinary evaluation restricted to the second halves (prefill and decode give identical logits).
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernel_set.h"
#include "kernels/quantized_model.h"
#include "kernels/token_pruning.h"

namespace illm::converter {

struct PrefillDecodeReport {
  double perplexity = 0;
  int64_t predicted_tokens = 0;
  int64_t windows = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;  // tokens run through the executor in each phase
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t cache_tokens = 0;           // Σ over windows and layers of the tokens cached after the prefill
  int64_t unpruned_cache_tokens = 0;  // the same without pruning (prefill tokens × layers)
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
};

// One report per entry of `settings` (e.g. {ρ, off}). Windows run one after another (the kernels use the configured
// threads), and each window runs under every setting in turn, so a change of machine load affects all settings
// alike; the phase times are wall-clock times of the executor calls. Windows of fewer than 2 tokens are skipped.
std::vector<PrefillDecodeReport> evaluate_prefill_decode(const QuantizedModel& model,
                                                         std::span<const std::vector<int32_t>> sequences,
                                                         std::span<const TokenPruning> settings,
                                                         const KernelSet& kernels, bool show_progress);

}  // namespace illm::converter
