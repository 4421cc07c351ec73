#pragma once
// --prune-rate ρ and --prune-from-layer l0 of `illm eval` and `illm generate`: attention-guided token pruning of
// prefill calls (kernels/token_pruning.h, docs/token-pruning.md). ρ is read as an exact decimal fraction, so the
// executor's ⌊ρ·T⌋ is integer arithmetic.
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "kernels/token_pruning.h"

namespace illm::converter {

struct PruneOptions {
  std::string rate;        // as given
  std::string from_layer;  // as given
  CLI::Option* rate_option = nullptr;  // set by add_prune_options: whether each flag was given
  CLI::Option* from_layer_option = nullptr;
  bool rate_given() const { return rate_option != nullptr && rate_option->count() > 0; }
  bool from_layer_given() const { return from_layer_option != nullptr && from_layer_option->count() > 0; }
};

// Adds --prune-rate and --prune-from-layer to `sub`.
void add_prune_options(CLI::App& sub, PruneOptions& target);

// "0.25" → 25/100. Accepts digits with at most one '.', at most 9 decimals, value in [0, 1); throws illm::Error
// naming --prune-rate and the text otherwise.
TokenPruning parse_prune_rate(const std::string& text);

// The executor option, checked against the model: --prune-from-layer needs --prune-rate and lies in
// [0, n_layers). Throws illm::Error naming the flag and the reason.
TokenPruning resolve_pruning(const PruneOptions& options, int32_t n_layers);

// Whether either flag was given.
bool pruning_requested(const PruneOptions& options);

// ρ as text for reports, e.g. "0.25" (the decimal as given, normalized).
std::string prune_rate_text(const TokenPruning& pruning);

}  // namespace illm::converter
