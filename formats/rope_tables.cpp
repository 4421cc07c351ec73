#include "formats/rope_tables.h"

#include <cmath>
#include <string>

#include "kernels/error.h"

namespace illm {

std::vector<double> rope_default_inv_freq(int head_dim, double rope_theta) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw Error("rope_default_inv_freq: head_dim must be positive and even (got " + std::to_string(head_dim) + ")");
  if (!(rope_theta > 1.0)) throw Error("rope_default_inv_freq: rope_theta must be > 1");
  std::vector<double> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i)
    inv_freq[i] = std::pow(rope_theta, -2.0 * i / static_cast<double>(head_dim));
  return inv_freq;
}

RopeTables build_rope_tables(std::span<const double> inv_freq, int max_positions, int frac_bits) {
  if (frac_bits < 1 || frac_bits > 14)
    throw Error("build_rope_tables: frac_bits must be in [1, 14] so that 1.0 fits int16 (got " +
                std::to_string(frac_bits) + ")");
  if (max_positions < 1) throw Error("build_rope_tables: max_positions must be >= 1");
  if (inv_freq.empty()) throw Error("build_rope_tables: no inverse frequencies");
  RopeTables t;
  t.max_positions = max_positions;
  t.half_dim = static_cast<int32_t>(inv_freq.size());
  t.frac_bits = frac_bits;
  t.cos.resize(static_cast<size_t>(max_positions) * inv_freq.size());
  t.sin.resize(t.cos.size());
  const double one = std::ldexp(1.0, frac_bits);
  for (int p = 0; p < max_positions; ++p) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      const size_t at = static_cast<size_t>(p) * inv_freq.size() + i;
      t.cos[at] = static_cast<int16_t>(std::round(std::cos(angle) * one));  // std::round: half away from zero
      t.sin[at] = static_cast<int16_t>(std::round(std::sin(angle) * one));
    }
  }
  return t;
}

}  // namespace illm
