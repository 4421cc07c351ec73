#include "kernels/token_pruning.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "kernels/error.h"

namespace illm {

void check_token_pruning(const TokenPruning& pruning, int32_t n_layers) {
  if (pruning.rate_denominator < 1 || pruning.rate_denominator > 1000000000)
    throw Error("token pruning: rate denominator " + std::to_string(pruning.rate_denominator) +
                " outside [1, 10^9]");
  if (pruning.rate_numerator < 0 || pruning.rate_numerator >= pruning.rate_denominator)
    throw Error("token pruning: rate " + std::to_string(pruning.rate_numerator) + "/" +
                std::to_string(pruning.rate_denominator) + " outside [0, 1)");
  if (pruning.from_layer < 0 || pruning.from_layer >= n_layers)
    throw Error("token pruning: first pruned layer " + std::to_string(pruning.from_layer) + " outside [0, " +
                std::to_string(n_layers) + ")");
}

int32_t pruned_token_count(const TokenPruning& pruning, int32_t present) {
  if (!pruning.enabled() || present < 1) return 0;
  // numerator < denominator <= 10^9 and present < 2^31: the product stays below 2^61.
  return static_cast<int32_t>(pruning.rate_numerator * present / pruning.rate_denominator);
}

std::vector<int32_t> tokens_to_prune(std::span<const int64_t> received, std::span<const int32_t> positions,
                                     int32_t n_remove) {
  const int64_t T = static_cast<int64_t>(received.size());
  if (positions.size() != received.size())
    throw Error("token pruning: " + std::to_string(received.size()) + " scores for " +
                std::to_string(positions.size()) + " positions");
  std::vector<int32_t> eligible;
  for (int32_t j = 0; j + 1 < T; ++j)  // never the last token
    if (positions[j] != 0) eligible.push_back(j);
  // score_j / (T − j) ascending, by cross-multiplication (|score| < 2^62, T − j <= 2^31: the products fit int128).
  std::sort(eligible.begin(), eligible.end(), [&](int32_t j, int32_t k) {
    const __int128 lhs = static_cast<__int128>(received[j]) * (T - k);
    const __int128 rhs = static_cast<__int128>(received[k]) * (T - j);
    return lhs < rhs || (lhs == rhs && j < k);
  });
  const size_t n = std::min(eligible.size(), static_cast<size_t>(std::max(n_remove, 0)));
  std::vector<int32_t> removed(eligible.begin(), eligible.begin() + static_cast<ptrdiff_t>(n));
  std::sort(removed.begin(), removed.end());
  return removed;
}

void remove_tokens(std::span<const int32_t> removed, ResidualStream& h, std::vector<int32_t>& positions) {
  if (positions.size() != static_cast<size_t>(h.rows))
    throw Error("token pruning: " + std::to_string(positions.size()) + " positions for " + std::to_string(h.rows) +
                " rows");
  const size_t cols = static_cast<size_t>(h.cols);
  int32_t kept = 0;
  size_t next_removed = 0;
  for (int32_t t = 0; t < h.rows; ++t) {
    if (next_removed < removed.size() && removed[next_removed] == t) {
      ++next_removed;
      continue;
    }
    if (kept != t) {
      std::copy_n(h.codes.begin() + static_cast<ptrdiff_t>(t * cols), cols,
                  h.codes.begin() + static_cast<ptrdiff_t>(kept * cols));
      h.scales[kept] = h.scales[t];
      positions[kept] = positions[t];
    }
    ++kept;
  }
  if (next_removed != removed.size()) throw Error("token pruning: removed indices not ascending within the rows");
  h.rows = kept;
  h.codes.resize(static_cast<size_t>(kept) * cols);
  h.scales.resize(kept);
  positions.resize(kept);
}

void rope_heads_at(const KernelSet& kernels, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                   std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                   int out_bits, PerHeadActivation& out, RequantClip clip, AlignedAccumulator& scratch_acc,
                   PerHeadActivation& scratch_out) {
  if (positions.size() != static_cast<size_t>(acc.rows))
    throw Error("rope_heads: " + std::to_string(positions.size()) + " positions for " + std::to_string(acc.rows) +
                " rows");
  if (acc.rows == 0 || positions.back() - positions.front() == acc.rows - 1) {  // consecutive (ascending)
    kernels.rope_heads(acc, heads, head_dim, acc.rows == 0 ? 0 : positions.front(), rope, settings, out_bits, out,
                       clip);
    return;
  }
  out.rows = acc.rows;
  out.heads = heads;
  out.head_dim = head_dim;
  out.bits = out_bits;
  out.codes.resize(static_cast<size_t>(acc.rows) * heads * head_dim);
  out.zero_points.resize(static_cast<size_t>(acc.rows) * heads);
  out.scales.resize(static_cast<size_t>(acc.rows) * heads);
  const size_t cols = static_cast<size_t>(acc.cols), per_token = static_cast<size_t>(heads) * head_dim;
  for (int32_t begin = 0; begin < acc.rows;) {
    int32_t end = begin + 1;
    while (end < acc.rows && positions[end] == positions[end - 1] + 1) ++end;
    const int32_t n = end - begin;
    scratch_acc.rows = n;
    scratch_acc.cols = acc.cols;
    scratch_acc.values.assign(acc.values.begin() + static_cast<ptrdiff_t>(begin * cols),
                              acc.values.begin() + static_cast<ptrdiff_t>(end * cols));
    scratch_acc.scales.assign(acc.scales.begin() + begin, acc.scales.begin() + end);
    kernels.rope_heads(scratch_acc, heads, head_dim, positions[begin], rope, settings, out_bits, scratch_out,
                       clip);
    std::copy(scratch_out.codes.begin(), scratch_out.codes.end(),
              out.codes.begin() + static_cast<ptrdiff_t>(begin * per_token));
    std::copy(scratch_out.zero_points.begin(), scratch_out.zero_points.end(),
              out.zero_points.begin() + static_cast<ptrdiff_t>(begin) * heads);
    std::copy(scratch_out.scales.begin(), scratch_out.scales.end(),
              out.scales.begin() + static_cast<ptrdiff_t>(begin) * heads);
    begin = end;
  }
}

}  // namespace illm
