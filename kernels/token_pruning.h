#pragma once
// Attention-guided token pruning (Agile-Quant), a prefill option of the executor; docs/token-pruning.md.
// Integer-only: the rate is a rational number, the importance an int64 sum of DI-ClippedSoftmax outputs, the order
// a cross-multiplication in 128 bits.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/kernel_set.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/rope.h"

namespace illm {

// ρ = rate_numerator / rate_denominator in [0, 1); pruning after the attention of every layer >= from_layer.
struct TokenPruning {
  int64_t rate_numerator = 0;    // 0: off
  int64_t rate_denominator = 1;  // >= 1, at most 10^9
  int32_t from_layer = 0;
  bool enabled() const { return rate_numerator > 0; }
};

// Throws illm::Error unless 0 <= ρ < 1, 1 <= denominator <= 10^9 and 0 <= from_layer < n_layers.
void check_token_pruning(const TokenPruning& pruning, int32_t n_layers);

// n_r = ⌊ρ · present⌋ (exact: numerator · present / denominator in int64).
int32_t pruned_token_count(const TokenPruning& pruning, int32_t present);

// The tokens to remove, as ascending local indices into the T = received.size() tokens still present (positions[t]
// their original positions, ascending). Order: j before k iff received[j]·(T − k) < received[k]·(T − j) (int128),
// ties by the smaller index: the least attention received per query that sees the token. The first n_remove of
// that order are removed, skipping position 0 and the last token (fewer when fewer are eligible).
std::vector<int32_t> tokens_to_prune(std::span<const int64_t> received, std::span<const int32_t> positions,
                                     int32_t n_remove);

// Drops `removed` (ascending local indices) from the rows of h and from positions.
void remove_tokens(std::span<const int32_t> removed, ResidualStream& h, std::vector<int32_t>& positions);

// The operator rope_heads at arbitrary ascending positions: one call per run of consecutive positions (a single
// call, on `acc` itself, when they are consecutive). `scratch_acc`/`scratch_out` hold a run's rows.
void rope_heads_at(const KernelSet& kernels, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                   std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                   int out_bits, PerHeadActivation& out, RequantClip clip, AlignedAccumulator& scratch_acc,
                   PerHeadActivation& scratch_out);

}  // namespace illm
