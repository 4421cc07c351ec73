#include "converter/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "converter/integer_eval.h"
#include "kernels/error.h"

namespace illm::converter {
namespace {

int32_t sample_last_row(const IntegerLogits& logits, const SamplingOptions& options, std::mt19937_64& rng) {
  if (options.temperature <= 0) return Executor::argmax_last(logits);
  const int32_t vocab = logits.vocab;
  const size_t row = static_cast<size_t>(logits.tokens - 1) * vocab;
  const Dyadic s = logits.scales[logits.tokens - 1];
  const double factor = std::ldexp(static_cast<double>(s.m), -s.k) / options.temperature;
  std::vector<double> p(vocab);
  double max_logit = -INFINITY;
  for (int32_t v = 0; v < vocab; ++v) {
    p[v] = static_cast<double>(logits.values[row + v]) * factor;
    max_logit = std::max(max_logit, p[v]);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - max_logit));
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  // Nucleus: the smallest prefix of the sorted distribution whose mass reaches top_p.
  double kept = 0;
  size_t n = 0;
  while (n < order.size() && (n == 0 || kept < options.top_p * sum)) kept += p[order[n++]];
  std::uniform_real_distribution<double> uniform(0.0, kept);
  double u = uniform(rng);
  for (size_t i = 0; i < n; ++i) {
    u -= p[order[i]];
    if (u <= 0) return order[i];
  }
  return order[n - 1];
}

}  // namespace

GenerationResult generate_tokens(Executor& executor, std::span<const int32_t> prompt, const SamplingOptions& options,
                                 const std::function<void(int32_t)>& on_token) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) throw Error("generation needs a prompt of at least one token");
  const int32_t max_positions = executor.model().shape.max_positions;
  // A prompt may fill the whole context: its last position still predicts one token.
  if (prompt.size() > static_cast<size_t>(max_positions)) {
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context holds " +
                std::to_string(max_positions) + " positions");
  }
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error("temperature must be a finite number >= 0");
  if (!(options.top_p > 0 && options.top_p <= 1)) throw Error("top-p must lie in (0, 1]");
  GenerationResult result;
  result.prompt_tokens = static_cast<int32_t>(prompt.size());
  std::mt19937_64 rng(options.seed);
  executor.reset();
  auto start = Clock::now();
  IntegerLogits logits = executor.forward(prompt);
  result.prefill_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  for (int i = 0; i < options.max_tokens; ++i) {
    const int32_t next = sample_last_row(logits, options, rng);
    if (options.stop_at_eos && next == executor.model().shape.eos_id) {
      result.stopped_at_eos = true;
      break;
    }
    result.tokens.push_back(next);
    if (on_token) on_token(next);
    if (i + 1 == options.max_tokens) break;
    if (executor.position() >= max_positions) {  // the next token would need a position past the context
      result.stopped_at_context = true;
      break;
    }
    const int32_t id = next;
    logits = executor.forward(std::span<const int32_t>(&id, 1));
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace illm::converter
