#pragma once
// Language-model quality metrics over logits, all computed in float64 whatever the logits' type: negative
// log-likelihood of the next token (log-softmax), perplexity, KL(P_ref ‖ P) per position and top-1 agreement.
// Used for the FP model and for the integer model's float-converted logits alike.
#include <cstdint>
#include <span>

namespace illm::converter {

// −log softmax(logits)[target], float64, max-shifted for stability. Throws illm::Error on target outside
// [0, logits.size()) and on a NaN or infinite logit (here and in kl_divergence).
double next_token_nll(std::span<const float> logits, int32_t target);

// KL(P_ref ‖ P) = Σ p_ref·(log p_ref − log p) between the softmax distributions of two logit rows of equal size.
double kl_divergence(std::span<const float> reference_logits, std::span<const float> logits);

// Index of the largest logit (the first on ties).
int64_t argmax(std::span<const float> logits);

// Mean NLL and perplexity = exp(mean NLL) over predicted tokens. Sums are kept in float64.
class PerplexityAccumulator {
 public:
  void add_nll(double nll);
  // Scores one window: row t of `logits` ([T][vocab] row-major) predicts ids[t+1], for t < T−1.
  void add_window(std::span<const float> logits, std::span<const int32_t> ids, int64_t vocab);
  int64_t count() const { return count_; }
  double mean_nll() const;
  double perplexity() const;

 private:
  double nll_sum_ = 0;
  int64_t count_ = 0;
};

// Mean KL(P_ref ‖ P) and top-1 agreement (argmax equal) of a model against a reference, per position.
class AgreementAccumulator {
 public:
  void add_position(std::span<const float> reference_logits, std::span<const float> logits);
  // Every row of a window ([T][vocab]); only the rows that predict a token (t < T−1) are counted, matching the
  // positions PerplexityAccumulator scores.
  void add_window(std::span<const float> reference_logits, std::span<const float> logits, int64_t vocab);
  int64_t count() const { return count_; }
  double mean_kl() const;
  double top1() const;  // fraction in [0, 1]

 private:
  double kl_sum_ = 0;
  int64_t agree_ = 0, count_ = 0;
};

}  // namespace illm::converter
