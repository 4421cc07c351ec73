#pragma once
// The optimized causal attention (the operator `attention`, kernels/kernel_set.h), bit-for-bit equal to
// kernels/reference/attention.h. Per KV head and block of query tokens (one OpenMP task each):
//   Q·Kᵀ   raw dot products of the group's query rows against the cached keys by the DI-MatMul dot blocks
//          (dot_block.h), corrected with the cached key code sums into P_j (row_kernels attention_logits);
//   align  the per-row key alignment (K2, μ_j) and value alignment (K_v, ν_j) over the row's valid prefix;
//   softmax clipped_softmax_row (softmax.h);
//   P·V    W_j = rdiv(P^I_j·ν_j, ν*) by a 128-bit reciprocal with one correction, then Σ_j W_j·V_j by the row
//          kernels and the zero-point term Σ_j W_j·z_j;
// then one DI_REQUANT per token over all heads (requantize_heads).
// With a non-empty `received` (the operator `attention_scored`): each task sums its rows' probabilities of the
// call's own keys, then adds them into `received` atomically (exact integer sums, so any order gives the same).
#include <cstdint>
#include <span>

#include "kernels/kv_cache.h"
#include "kernels/optimized/isa.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"

namespace illm::optimized {

void attention_layer(const Isa& isa, const PerHeadActivation& query, const KvCache& cache, int32_t layer,
                     int32_t first_position, Dyadic clip, const IntegerSettings& settings, int out_bits,
                     QuantizedActivation& out, RequantClip out_clip,
                     std::span<int64_t> received);

}  // namespace illm::optimized
