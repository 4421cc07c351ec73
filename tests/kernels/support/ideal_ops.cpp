#include "tests/kernels/support/ideal_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace illm::ideal {

double exp(double x) { return std::exp(x); }

std::vector<double> softmax(std::span<const double> logits, int valid_len, double clip) {
  if (valid_len < 0 || valid_len > static_cast<int>(logits.size()))
    throw std::invalid_argument("ideal::softmax: valid_len outside [0, row length]");
  std::vector<double> p(logits.size(), 0.0);
  if (valid_len == 0) return p;
  const double x_max = *std::max_element(logits.begin(), logits.begin() + valid_len);
  const double floor_value = clip > 0 ? x_max - clip : -INFINITY;
  double sum = 0;
  for (int j = 0; j < valid_len; ++j) {
    p[j] = std::exp(std::max(logits[j], floor_value) - x_max);
    sum += p[j];
  }
  for (int j = 0; j < valid_len; ++j) p[j] /= sum;
  return p;
}

std::vector<double> rmsnorm(std::span<const double> x, std::span<const double> gamma, double eps) {
  if (x.size() != gamma.size()) throw std::invalid_argument("ideal::rmsnorm: x and gamma differ in length");
  double mean_square = 0;
  for (double v : x) mean_square += v * v;
  mean_square /= static_cast<double>(x.empty() ? 1 : x.size());
  const double inv_rms = 1.0 / std::sqrt(mean_square + eps);
  std::vector<double> y(x.size());
  for (size_t c = 0; c < x.size(); ++c) y[c] = x[c] * inv_rms * gamma[c];
  return y;
}

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

double silu(double x) { return x * sigmoid(x); }

double swiglu(double gate, double up, double alpha) { return gate * sigmoid(gate / alpha) * up; }

}  // namespace illm::ideal
