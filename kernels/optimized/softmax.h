#pragma once
// The optimized DI-ClippedSoftmax of one attention row: bit-for-bit equal to di_clipped_softmax_row
// (kernels/reference/di_softmax.h) on its valid keys, with the per-element work in the row kernels.
#include <cstdint>

#include "kernels/dyadic.h"
#include "kernels/optimized/row_kernels.h"
#include "kernels/quantized_model.h"

namespace illm::optimized {

// probs[j] for j < valid (1 <= valid) of the aligned logits (|logit| < 2^62; real logit = logit · m_in / 2^k_in);
// `scratch` holds `valid` int64 values. Settings were validated with the model.
void clipped_softmax_row(const RowKernels& k, const int64_t* logits, int32_t valid, int64_t m_in, int32_t k_in,
                         Dyadic clip, const IntegerSettings& settings, int32_t* probs, int64_t* scratch);

}  // namespace illm::optimized
