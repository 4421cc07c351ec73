#pragma once
// Evaluation of the integer model: the executor produces integer logits with a per-token dyadic scale; only
// after that are they converted to float (evaluation only, docs/method.md §7.6) and scored like the FP model's.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kernels/executor.h"
#include "kernels/kernel_set.h"
#include "kernels/quantized_model.h"

namespace illm::calib {
class FpModel;
}

namespace illm::converter {

// value · m / 2^k per entry, as float (evaluation only).
std::vector<float> dequantize_logits(const IntegerLogits& logits);

// Runs every sequence through the integer executor (each from an empty KV cache); `consume(index, logits)` is
// called once per sequence, in order, with its T·vocab float logits. Sequences are spread over OpenMP threads;
// the result does not depend on the thread count.
using FloatLogitsConsumer = std::function<void(std::size_t index, std::span<const float> logits)>;
// `kernels`: the kernel path of the executors (every path gives bit-identical logits).
void for_each_integer_logits(const QuantizedModel& model, std::span<const std::vector<int32_t>> sequences,
                             const FloatLogitsConsumer& consume, bool show_progress,
                             const KernelSet& kernels = optimized_kernels());

// The FP model's logits on evaluation windows, computed once and kept (windows · T · vocab floats) to compare
// integer models with: the FP model streams its blocks, so it is not in memory while the integer model runs.
struct FpReference {
  std::vector<std::vector<float>> logits;  // per window
  double perplexity = 0;
  double seconds = 0;
};
FpReference fp_reference_logits(const calib::FpModel& fp, std::span<const std::vector<int32_t>> sequences,
                                bool show_progress);

// Quality of a model against the FP reference on the same windows.
struct QualityReport {
  double perplexity = 0;            // the evaluated (integer) model
  double reference_perplexity = 0;  // FP (0 when no reference)
  double kl_mean = 0;               // mean KL(P_FP ‖ P_int) per predicted position
  double top1 = 0;                  // argmax agreement with FP, fraction
  int64_t predicted_tokens = 0;
  int64_t windows = 0;
  double seconds = 0;               // integer executor time
  double reference_seconds = 0;
};

// Scores the integer model, and (when `reference` is given) the FP model, KL and top-1 on `sequences`.
QualityReport evaluate_integer_model(const QuantizedModel& model, const calib::FpModel* reference,
                                     std::span<const std::vector<int32_t>> sequences, bool show_progress,
                                     const KernelSet& kernels = optimized_kernels());
// The same against logits computed before (fp_reference_logits on the same sequences); null: no reference.
QualityReport evaluate_integer_model(const QuantizedModel& model, const FpReference* reference,
                                     std::span<const std::vector<int32_t>> sequences, bool show_progress,
                                     const KernelSet& kernels = optimized_kernels());

}  // namespace illm::converter
