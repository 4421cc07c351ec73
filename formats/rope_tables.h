#pragma once
// Offline (float64) generation of the integer RoPE tables (docs/method.md §7.4): for every position p < max_positions
// and frequency i < d/2, C[p][i] = round(cos(p·θ_i)·2^F) and S[p][i] = round(sin(p·θ_i)·2^F) as int16
// (F = frac_bits, 14 = Q1.14; round = half away from zero). |table/2^F − exact| ≤ 2^−(F+1) per entry.
// The tables are stored with the model (QuantizedModel::rope_cos / rope_sin, row-major [p][i]);
// the integer executor only reads them (kernels/reference/rope.h).
#include <cstdint>
#include <span>
#include <vector>

namespace illm {

struct RopeTables {
  int32_t max_positions = 0;
  int32_t half_dim = 0;  // d / 2 = number of inverse frequencies
  int32_t frac_bits = 14;
  std::vector<int16_t> cos;  // [max_positions][half_dim]
  std::vector<int16_t> sin;  // [max_positions][half_dim]
};

// Inverse frequencies of the default (unscaled) LLaMA RoPE: θ_i = base^(−2i/d), i < d/2. Models with
// rope_scaling (e.g. LLaMA-3 "llama3" type) compute their own θ_i and pass them to build_rope_tables.
std::vector<double> rope_default_inv_freq(int head_dim, double rope_theta);

// Builds the Q1.F tables from the inverse frequencies θ_i (angles p·θ_i computed in float64).
// Requires 1 <= frac_bits <= 14 so that cos = 1 (2^F) fits int16; throws illm::Error otherwise.
RopeTables build_rope_tables(std::span<const double> inv_freq, int max_positions, int frac_bits = 14);

}  // namespace illm
