#include "converter/integer_eval.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>

#include "calibration/fp_model.h"
#include "converter/metrics.h"
#include "converter/progress.h"
#include "kernels/error.h"

namespace illm::converter {

std::vector<float> dequantize_logits(const IntegerLogits& logits) {
  std::vector<float> out(logits.values.size());
  for (int32_t t = 0; t < logits.tokens; ++t) {
    const Dyadic s = logits.scales[t];
    const double factor = std::ldexp(static_cast<double>(s.m), -s.k);
    const size_t row = static_cast<size_t>(t) * logits.vocab;
    for (int32_t v = 0; v < logits.vocab; ++v) {
      out[row + v] = static_cast<float>(static_cast<double>(logits.values[row + v]) * factor);
    }
  }
  return out;
}

void for_each_integer_logits(const QuantizedModel& model, std::span<const std::vector<int32_t>> sequences,
                             const FloatLogitsConsumer& consume, bool show_progress, const KernelSet& kernels) {
  Progress progress("integer eval", static_cast<int64_t>(sequences.size()), "windows", show_progress);
  // Windows run in parallel (one executor per thread, with its own KV cache); results are handed to `consume`
  // strictly in order, so accumulations are identical for any thread count. An exception must not leave the
  // parallel region (it would terminate the process): the first one is kept, the other threads stop taking
  // work, and it is rethrown after the region.
  std::mutex mutex;
  std::map<size_t, std::vector<float>> ready;
  size_t next = 0;
  const int64_t n = static_cast<int64_t>(sequences.size());
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  auto record_failure = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    if (!failure) failure = std::current_exception();
    failed = true;
  };
#pragma omp parallel
  {
    std::optional<Executor> executor;
    try {
      executor.emplace(model, kernels);
    } catch (...) {
      record_failure();
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
      if (failed) continue;  // every thread must still reach the end of the worksharing loop
      try {
        executor->reset();
        std::vector<float> logits = dequantize_logits(executor->forward(sequences[i]));
        std::lock_guard<std::mutex> lock(mutex);
        ready.emplace(static_cast<size_t>(i), std::move(logits));
        while (!failed && !ready.empty() && ready.begin()->first == next) {
          consume(next, ready.begin()->second);
          ready.erase(ready.begin());
          ++next;
          progress.advance();
        }
      } catch (...) {
        record_failure();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
}

FpReference fp_reference_logits(const calib::FpModel& fp, std::span<const std::vector<int32_t>> sequences,
                                bool show_progress) {
  const auto start = std::chrono::steady_clock::now();
  FpReference ref;
  ref.logits.resize(sequences.size());
  PerplexityAccumulator ppl;
  Progress progress("FP eval", static_cast<int64_t>(sequences.size()), "windows", show_progress);
  fp.for_each_logits(sequences, 16, [&](std::size_t i, std::span<const float> logits) {
    ref.logits[i].assign(logits.begin(), logits.end());
    ppl.add_window(logits, sequences[i], fp.config().vocab_size);
    progress.advance();
  });
  ref.perplexity = ppl.perplexity();
  ref.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ref;
}

QualityReport evaluate_integer_model(const QuantizedModel& model, const calib::FpModel* reference,
                                     std::span<const std::vector<int32_t>> sequences, bool show_progress,
                                     const KernelSet& kernels) {
  if (reference == nullptr)
    return evaluate_integer_model(model, static_cast<const FpReference*>(nullptr), sequences, show_progress, kernels);
  const FpReference fp = fp_reference_logits(*reference, sequences, show_progress);
  return evaluate_integer_model(model, &fp, sequences, show_progress, kernels);
}

QualityReport evaluate_integer_model(const QuantizedModel& model, const FpReference* reference,
                                     std::span<const std::vector<int32_t>> sequences, bool show_progress,
                                     const KernelSet& kernels) {
  using Clock = std::chrono::steady_clock;
  QualityReport report;
  report.windows = static_cast<int64_t>(sequences.size());
  const int64_t vocab = model.shape.vocab;
  if (reference != nullptr) {
    if (reference->logits.size() != sequences.size())
      throw Error("integer evaluation: the FP reference holds " + std::to_string(reference->logits.size()) +
                  " windows, the data " + std::to_string(sequences.size()));
    report.reference_perplexity = reference->perplexity;
    report.reference_seconds = reference->seconds;
  }
  const auto start = Clock::now();
  PerplexityAccumulator ppl;
  AgreementAccumulator agreement;
  for_each_integer_logits(
      model, sequences,
      [&](std::size_t i, std::span<const float> logits) {
        ppl.add_window(logits, sequences[i], vocab);
        if (reference != nullptr) agreement.add_window(reference->logits[i], logits, vocab);
      },
      show_progress, kernels);
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.perplexity = ppl.perplexity();
  report.predicted_tokens = ppl.count();
  if (reference != nullptr) {
    report.kl_mean = agreement.mean_kl();
    report.top1 = agreement.top1();
  }
  return report;
}

}  // namespace illm::converter
