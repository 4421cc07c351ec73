#include "converter/prefill_decode_eval.h"

#include <chrono>

#include "converter/integer_eval.h"
#include "converter/metrics.h"
#include "converter/progress.h"
#include "kernels/executor.h"

namespace illm::converter {
namespace {

double last_row_nll(const IntegerLogits& logits, int32_t target) {
  const std::vector<float> values = dequantize_logits(logits);
  const size_t row = static_cast<size_t>(logits.tokens - 1) * logits.vocab;
  return next_token_nll(std::span<const float>(values.data() + row, static_cast<size_t>(logits.vocab)), target);
}

}  // namespace

std::vector<PrefillDecodeReport> evaluate_prefill_decode(const QuantizedModel& model,
                                                         std::span<const std::vector<int32_t>> sequences,
                                                         std::span<const TokenPruning> settings,
                                                         const KernelSet& kernels, bool show_progress) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  std::vector<Executor> executors;
  executors.reserve(settings.size());
  for (const TokenPruning& pruning : settings) {
    executors.emplace_back(model, kernels);
    executors.back().set_token_pruning(pruning);
  }
  std::vector<PrefillDecodeReport> reports(settings.size());
  std::vector<PerplexityAccumulator> ppl(settings.size());
  Progress progress("prefill/decode eval", static_cast<int64_t>(sequences.size()), "windows", show_progress);
  for (const std::vector<int32_t>& ids : sequences) {
    const int32_t T = static_cast<int32_t>(ids.size());
    for (size_t s = 0; s < settings.size() && T >= 2; ++s) {
      Executor& executor = executors[s];
      PrefillDecodeReport& report = reports[s];
      const int32_t half = T / 2;
      executor.reset();
      auto start = Clock::now();
      const IntegerLogits prefill =
          executor.forward(std::span<const int32_t>(ids.data(), static_cast<size_t>(half)));
      report.prefill_seconds += seconds_since(start);
      report.prefill_tokens += half;
      ppl[s].add_nll(last_row_nll(prefill, ids[half]));
      for (int32_t l = 0; l < model.shape.n_layers; ++l) report.cache_tokens += executor.cache().length(l);
      report.unpruned_cache_tokens += int64_t{half} * model.shape.n_layers;
      for (int32_t t = half; t + 1 < T; ++t) {  // only the executor is timed, not the scoring
        start = Clock::now();
        const IntegerLogits step = executor.forward(std::span<const int32_t>(ids.data() + t, 1));
        report.decode_seconds += seconds_since(start);
        ppl[s].add_nll(last_row_nll(step, ids[t + 1]));
        ++report.decode_tokens;
      }
      ++report.windows;
    }
    progress.advance();
  }
  for (size_t s = 0; s < settings.size(); ++s) {
    reports[s].perplexity = ppl[s].perplexity();
    reports[s].predicted_tokens = ppl[s].count();
  }
  return reports;
}

}  // namespace illm::converter
