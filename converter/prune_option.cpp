#include "converter/prune_option.h"

#include <cctype>

#include "kernels/error.h"

namespace illm::converter {

void add_prune_options(CLI::App& sub, PruneOptions& target) {
  target.rate_option = sub.add_option("--prune-rate", target.rate,
                 "Token pruning of prefill calls (Agile-Quant): after the attention of each layer >= "
                 "--prune-from-layer, remove floor(rate * present tokens) tokens that received the least attention "
                 "(never position 0 or the last token); a decimal in [0, 1), default 0 (off)");
  target.from_layer_option = sub.add_option("--prune-from-layer", target.from_layer,
                 "First layer that prunes (0 .. n_layers - 1, default 0); needs --prune-rate");
}

bool pruning_requested(const PruneOptions& options) { return options.rate_given() || options.from_layer_given(); }

TokenPruning parse_prune_rate(const std::string& text) {
  const auto bad = [&](const char* why) {
    return Error("--prune-rate '" + text + "': " + why + " (expected a decimal in [0, 1), e.g. 0.25)");
  };
  TokenPruning pruning;
  int64_t integer = 0, numerator = 0, denominator = 1;
  bool seen_point = false, seen_digit = false;
  for (const char c : text) {
    if (c == '.') {
      if (seen_point) throw bad("more than one decimal point");
      seen_point = true;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      seen_digit = true;
      if (!seen_point) {
        integer = integer * 10 + (c - '0');
        if (integer >= 1) throw bad("must be below 1");
      } else {
        if (denominator == 1000000000) throw bad("more than 9 decimals");
        numerator = numerator * 10 + (c - '0');
        denominator *= 10;
      }
    } else {
      throw bad("not a decimal number");
    }
  }
  if (!seen_digit) throw bad("not a decimal number");
  pruning.rate_numerator = numerator;
  pruning.rate_denominator = denominator;
  return pruning;
}

TokenPruning resolve_pruning(const PruneOptions& options, int32_t n_layers) {
  if (!options.rate_given() && options.from_layer_given()) throw Error("--prune-from-layer needs --prune-rate");
  if (!options.rate_given()) return TokenPruning{};
  TokenPruning pruning = parse_prune_rate(options.rate);
  if (options.from_layer_given()) {
    const std::string& text = options.from_layer;
    const std::string range = "[0, " + std::to_string(n_layers - 1) + "] (the model has " +
                              std::to_string(n_layers) + " layers)";
    bool digits = !text.empty() && text.size() <= 9;
    for (const char c : text) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits) throw Error("--prune-from-layer '" + text + "': not a layer index in " + range);
    const int64_t layer = std::stoll(text);
    if (layer >= n_layers) throw Error("--prune-from-layer " + text + ": outside " + range);
    pruning.from_layer = static_cast<int32_t>(layer);
  }
  check_token_pruning(pruning, n_layers);
  return pruning;
}

std::string prune_rate_text(const TokenPruning& pruning) {
  // numerator / 10^d as "0.<d digits>" with trailing zeros dropped.
  if (pruning.rate_numerator == 0) return "0";
  std::string digits = std::to_string(pruning.rate_numerator);
  const std::string denominator = std::to_string(pruning.rate_denominator);
  const size_t decimals = denominator.size() - 1;  // a power of ten
  if (denominator != "1" + std::string(decimals, '0')) return std::to_string(pruning.rate_numerator) + "/" + denominator;
  digits = std::string(decimals - digits.size(), '0') + digits;
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  return "0." + digits;
}

}  // namespace illm::converter
