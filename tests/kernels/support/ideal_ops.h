#pragma once
// Float64 "ideal" functions: the real-valued operators that the integer kernels approximate.
// Used only by tests and the error-table tool (bench/kernel_error_tables); never by the integer executor.
#include <cstdint>
#include <span>
#include <vector>

namespace illm::ideal {

// e^x.
double exp(double x);

// Softmax over the first valid_len entries of `logits` (masked entries j >= valid_len get probability 0).
// clip > 0 applies the paper's clipping x̃_j = max(x_j, x_max − clip) first (clip <= 0: no clipping).
std::vector<double> softmax(std::span<const double> logits, int valid_len, double clip = 0.0);

// RMSNorm: y_c = x_c / sqrt(mean_c(x_c²) + eps) · gamma_c.
std::vector<double> rmsnorm(std::span<const double> x, std::span<const double> gamma, double eps);

// Logistic sigmoid 1 / (1 + e^−x), evaluated without overflow for any x.
double sigmoid(double x);

// SiLU x · σ(x).
double silu(double x);

// SwiGLU with FSBR's act-smooth divisor α (docs/method.md §6.1): g · σ(g / α) · u.
double swiglu(double gate, double up, double alpha);

}  // namespace illm::ideal
