#pragma once
// Optimized row-wise operators of the kernel set (kernels/kernel_set.h): DI-Norm, DI_REQUANT of accumulators,
// q/k RoPE heads, v heads, DI-SwiGLU, the residual add, and the online Walsh–Hadamard sites' halves before the
// transform (DI-SwiGLU and RoPE ending in a 16-bit symmetric requantization; kernels/reference/hadamard_sites.h).
// Rows (tokens) are independent: OpenMP over rows, each row computed by the reference row function
// (kernels/reference/*) or a faster exact equivalent; a site and its Hadamard form share the same row steps.
#include <cstdint>
#include <span>

#include "kernels/optimized/row_kernels.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"

namespace illm::optimized {

void rms_norm(const RowKernels& k, const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
              const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip);
void requantize(const RowKernels& k, const AlignedAccumulator& acc, int out_bits, int mantissa_bits,
                QuantizedActivation& out, RequantClip clip);
void rope_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                int32_t first_position, const RopeTableView& rope, const IntegerSettings& settings, int out_bits,
                PerHeadActivation& out, RequantClip clip);
void split_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                 const IntegerSettings& settings, int out_bits, PerHeadActivation& out, RequantClip clip);
void swiglu(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
            const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
            RequantClip clip);
void swiglu_symmetric(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
                      const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out);
void rope_symmetric(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                    std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                    WideRows& out);
void residual_add(const RowKernels& k, const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits,
                  int out_bits, ResidualStream& out);

}  // namespace illm::optimized
