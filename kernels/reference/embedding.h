#pragma once
// Embedding lookup (docs/method.md §7.3; docs/integer-semantics.md "## Embedding"): a row of the symmetric
// row-quantized table is already a per-token quantized residual row, so the lookup is a copy.
#include <cstdint>
#include <span>

#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"

namespace illm {

// Rows of model.embed_codes / model.embed_scales for each token id → residual stream (bits = embed_bits).
// Throws illm::Error naming the token id when it is outside [0, vocab).
ResidualStream embedding_lookup(const QuantizedModel& model, std::span<const int32_t> token_ids);
// The operator `embedding` (kernels/kernel_set.h).
void embedding_lookup(const QuantizedModel& model, std::span<const int32_t> token_ids, ResidualStream& out);
void embedding_lookup(std::span<const int16_t> table_codes, std::span<const Dyadic> row_scales, int32_t hidden,
                      int32_t bits, std::span<const int32_t> token_ids, ResidualStream& out);
ResidualStream embedding_lookup(std::span<const int16_t> table_codes, std::span<const Dyadic> row_scales,
                                int32_t hidden, int32_t bits, std::span<const int32_t> token_ids);

}  // namespace illm
