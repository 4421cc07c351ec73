#include "converter/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace illm::converter {
namespace {

// log Σ exp(x_i), max-shifted, float64.
double log_sum_exp(std::span<const float> logits, double max_logit) {
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max_logit);
  return max_logit + std::log(sum);
}

// The row's maximum; a NaN or infinite logit is an error (a perplexity of NaN would otherwise be reported).
double max_of(std::span<const float> logits) {
  if (logits.empty()) throw Error("metrics: empty logits row");
  for (std::size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i]))
      throw Error("metrics: logit " + std::to_string(i) + " of a row is " + (std::isnan(logits[i]) ? "NaN" : "infinite") +
                  ": the model's output is not finite (overflow in the weights or activations)");
  return *std::max_element(logits.begin(), logits.end());
}

void check_window(std::size_t logits_size, std::size_t T, int64_t vocab) {
  if (vocab <= 0 || logits_size != T * static_cast<std::size_t>(vocab))
    throw Error("metrics: " + std::to_string(logits_size) + " logits for a window of " + std::to_string(T) +
                " tokens × vocab " + std::to_string(vocab));
}

}  // namespace

double next_token_nll(std::span<const float> logits, int32_t target) {
  if (target < 0 || static_cast<std::size_t>(target) >= logits.size())
    throw Error("metrics: target token " + std::to_string(target) + " outside the vocabulary [0, " +
                std::to_string(logits.size()) + ")");
  return log_sum_exp(logits, max_of(logits)) - static_cast<double>(logits[static_cast<std::size_t>(target)]);
}

double kl_divergence(std::span<const float> reference_logits, std::span<const float> logits) {
  if (reference_logits.size() != logits.size())
    throw Error("metrics: KL between logit rows of different sizes (" + std::to_string(reference_logits.size()) +
                " vs " + std::to_string(logits.size()) + ")");
  const double ref_lse = log_sum_exp(reference_logits, max_of(reference_logits));
  const double lse = log_sum_exp(logits, max_of(logits));
  double kl = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double log_p_ref = reference_logits[i] - ref_lse;
    const double log_p = logits[i] - lse;
    kl += std::exp(log_p_ref) * (log_p_ref - log_p);
  }
  return std::max(kl, 0.0);  // rounding can leave −1e-17 for identical rows
}

int64_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("metrics: empty logits row");
  return std::max_element(logits.begin(), logits.end()) - logits.begin();
}

void PerplexityAccumulator::add_nll(double nll) {
  nll_sum_ += nll;
  ++count_;
}

void PerplexityAccumulator::add_window(std::span<const float> logits, std::span<const int32_t> ids, int64_t vocab) {
  check_window(logits.size(), ids.size(), vocab);
  const auto V = static_cast<std::size_t>(vocab);
  for (std::size_t t = 0; t + 1 < ids.size(); ++t) add_nll(next_token_nll(logits.subspan(t * V, V), ids[t + 1]));
}

double PerplexityAccumulator::mean_nll() const {
  return count_ ? nll_sum_ / static_cast<double>(count_) : std::numeric_limits<double>::quiet_NaN();
}

double PerplexityAccumulator::perplexity() const { return std::exp(mean_nll()); }

void AgreementAccumulator::add_position(std::span<const float> reference_logits, std::span<const float> logits) {
  kl_sum_ += kl_divergence(reference_logits, logits);
  agree_ += argmax(reference_logits) == argmax(logits) ? 1 : 0;
  ++count_;
}

void AgreementAccumulator::add_window(std::span<const float> reference_logits, std::span<const float> logits,
                                      int64_t vocab) {
  if (vocab <= 0 || reference_logits.size() != logits.size() || logits.size() % static_cast<std::size_t>(vocab))
    throw Error("metrics: reference and model logits of a window differ in size or are not rows of vocab " +
                std::to_string(vocab));
  const auto V = static_cast<std::size_t>(vocab);
  const std::size_t T = logits.size() / V;
  for (std::size_t t = 0; t + 1 < T; ++t) add_position(reference_logits.subspan(t * V, V), logits.subspan(t * V, V));
}

double AgreementAccumulator::mean_kl() const {
  return count_ ? kl_sum_ / static_cast<double>(count_) : std::numeric_limits<double>::quiet_NaN();
}

double AgreementAccumulator::top1() const {
  return count_ ? static_cast<double>(agree_) / static_cast<double>(count_) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace illm::converter
